package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
	"github.com/switchboard-hub/switchboard/plugins/sdk/testkit"
)

func fixture() testkit.ChannelFixture {
	req := func(token string, n int) *sdk.WebhookRequest {
		body, _ := json.Marshal(inbound{ID: fmt.Sprintf("m%d", n), From: "alice", Name: "Alice", Text: "hello"})
		return &sdk.WebhookRequest{Method: "POST", Body: body, ReceivedAt: time.Now(),
			Header: http.Header{"Authorization": {"Bearer " + token}}}
	}
	return testkit.ChannelFixture{
		Config:        json.RawMessage(`{"token":"t0ken"}`),
		ValidWebhook:  func(t *testing.T, n int) *sdk.WebhookRequest { return req("t0ken", n) },
		ForgedWebhook: func(t *testing.T) *sdk.WebhookRequest { return req("wrong", 0) },
		Recipient:     sdk.Identity{Channel: "echo", UserID: "alice"},
	}
}

// The SDK's conformance suite, in-process over real gRPC...
func TestConformanceInProcess(t *testing.T) {
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel { return testkit.StartChannel(t, &Echo{}) }, fixture())
}

// ...and against the built binary, as the hub runs it.
func TestConformanceSubprocess(t *testing.T) {
	bin := testkit.BuildPlugin(t, ".")
	testkit.RunChannelSuite(t, func(t *testing.T) *sdk.RemoteChannel { return testkit.LaunchChannel(t, bin) }, fixture())
}
