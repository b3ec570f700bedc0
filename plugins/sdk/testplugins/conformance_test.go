package testplugins_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testplugins"
)

const secret = "conformance-secret"

func channelFixture() testkit.ChannelFixture {
	webhook := func(body []byte, sig string) *sdk.WebhookRequest {
		return &sdk.WebhookRequest{Method: "POST", Path: "/webhooks/test", Body: body,
			Header: http.Header{testplugins.SignatureHeader: {sig}}, ReceivedAt: time.Now()}
	}
	return testkit.ChannelFixture{
		Config: json.RawMessage(`{"secret":"` + secret + `"}`),
		ValidWebhook: func(t *testing.T, n int) *sdk.WebhookRequest {
			b, _ := json.Marshal(testplugins.WebhookBody{Messages: []testplugins.WebhookMessage{
				{ID: fmt.Sprintf("m%d", n), User: "u1", Text: "xin chào"}}})
			return webhook(b, testplugins.Sign(secret, b))
		},
		ForgedWebhook: func(t *testing.T) *sdk.WebhookRequest {
			b := []byte(`{"messages":[{"id":"x","user":"u","text":"hi"}]}`)
			return webhook(b, testplugins.Sign("wrong", b))
		},
		Recipient: sdk.Identity{Channel: "test", UserID: "u1"},
	}
}

var llmSchema = json.RawMessage(`{"type":"object","required":["reply","intent"],"properties":{"reply":{"type":"string"},"intent":{"type":"string"}}}`)

func TestChannelConformanceInProcess(t *testing.T) {
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel {
		return testkit.StartChannel(t, testplugins.NewChannel())
	}, channelFixture())
}

func TestChannelConformanceSubprocess(t *testing.T) {
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/testplugins/testchannel")
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel { return testkit.LaunchChannel(t, bin) }, channelFixture())
}

func TestCRMConformanceInProcess(t *testing.T) {
	testkit.RunCRMSuite(t, func(t *testing.T) *sdk.RemoteCRM { return testkit.StartCRM(t, testplugins.NewCRM()) }, testkit.CRMFixture{})
}

func TestCRMConformanceSubprocess(t *testing.T) {
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/testplugins/testcrm")
	testkit.RunCRMSuite(t, func(t *testing.T) *sdk.RemoteCRM { return testkit.LaunchCRM(t, bin) }, testkit.CRMFixture{})
}

func TestLLMConformanceInProcess(t *testing.T) {
	testkit.RunLLMSuite(t, func(t *testing.T) *sdk.RemoteLLM { return testkit.StartLLM(t, testplugins.NewLLM()) },
		testkit.LLMFixture{Schema: llmSchema})
}

func TestLLMConformanceSubprocess(t *testing.T) {
	bin := testkit.BuildPlugin(t, "github.com/switchboard-hub/switchboard/plugins/sdk/testplugins/testllm")
	testkit.RunLLMSuite(t, func(t *testing.T) *sdk.RemoteLLM { return testkit.LaunchLLM(t, bin) }, testkit.LLMFixture{Schema: llmSchema})
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		text, intent, timeline string
		dm                     bool
	}{
		{"Cho mình xin báo giá CRM", "quote", "", false},
		{"Tôi là giám đốc, cần demo ngay tuần này", "demo", "urgent", true},
		{"Tôi muốn khiếu nại về dịch vụ", "complaint", "", false},
		{"cho toi gap nhan vien", "human_request", "", false},
		{"Kiếm tiền nhanh click here", "spam", "", false},
	} {
		f := testplugins.Classify(tc.text)
		if f.Intent != tc.intent || f.Timeline != tc.timeline || (f.DecisionMaker != nil) != tc.dm {
			t.Errorf("Classify(%q) = %+v, want intent %s timeline %q dm %v", tc.text, f, tc.intent, tc.timeline, tc.dm)
		}
	}
}
