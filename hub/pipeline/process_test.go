package pipeline

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func TestParseStructured(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		reply    string
		facts    sdk.LeadFacts
	}{
		{"full", `{"reply":"Dạ","intent":"quote","need":"CRM","budget":"50 triệu","timeline":"tuần này","decision_maker":true,"lead_estimate":80,"action":"send_quote","confidence":0.9}`,
			"Dạ", sdk.LeadFacts{Intent: "quote", Need: "CRM", Budget: "50 triệu", Timeline: "tuần này", DecisionMaker: true, DecisionMakerKnown: true, Estimate: 80, Action: "send_quote", Confidence: 0.9}},
		{"null decision maker stays unknown", `{"reply":"x","intent":"inquiry","decision_maker":null}`, "x", sdk.LeadFacts{Intent: "inquiry"}},
		{"suggested_action spelling", `{"reply":"x","intent":"demo","suggested_action":"schedule_demo"}`, "x", sdk.LeadFacts{Intent: "demo", Action: "schedule_demo"}},
		{"malformed gives nothing", `{"reply":`, "", sdk.LeadFacts{}},
		{"empty", ``, "", sdk.LeadFacts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, reply := parseStructured(json.RawMessage(tc.in))
			if reply != tc.reply || f.Intent != tc.facts.Intent || f.Need != tc.facts.Need || f.Budget != tc.facts.Budget ||
				f.Timeline != tc.facts.Timeline || f.DecisionMaker != tc.facts.DecisionMaker || f.DecisionMakerKnown != tc.facts.DecisionMakerKnown ||
				f.Estimate != tc.facts.Estimate || f.Action != tc.facts.Action || f.Confidence != tc.facts.Confidence {
				t.Errorf("got %+v %q, want %+v %q", f, reply, tc.facts, tc.reply)
			}
		})
	}
}

func TestMergeFactsKeepsWhatTheLLMDidNotRepeat(t *testing.T) {
	acc := sdk.LeadFacts{Need: "CRM", Budget: "50 triệu", DecisionMaker: true, DecisionMakerKnown: true}
	mergeFacts(&acc, sdk.LeadFacts{Timeline: "tuần này", Intent: "quote"})
	if acc.Need != "CRM" || acc.Budget != "50 triệu" || !acc.DecisionMaker || acc.Timeline != "tuần này" || acc.Intent != "quote" {
		t.Errorf("after a turn that only added the timeline: %+v", acc)
	}
	mergeFacts(&acc, sdk.LeadFacts{DecisionMaker: false, DecisionMakerKnown: true})
	if acc.DecisionMaker {
		t.Error("a known 'not the decision maker' did not replace the earlier answer")
	}
}

func TestRulesInputIsTheBurstSinceTheLastReply(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	conv := &Conversation{ID: "z:1", Channel: "zalo", Contact: sdk.Identity{UserID: "u1", DisplayName: "An"}, Tags: []string{"vip"},
		Turns: 3, Facts: sdk.LeadFacts{Intent: "quote"}, Score: 40}
	h := []Turn{
		{ID: "m1", Role: "customer", Text: "Chào shop", At: at},
		{ID: "r1", Role: "bot", Text: "Dạ chào anh", At: at},
		{ID: "m2", Role: "customer", Text: "giá gói Pro?", At: at.Add(time.Second)},
		{ID: "m3", Role: "customer", Text: "cần gấp", At: at.Add(2 * time.Second)},
	}
	in := RulesInput(conv, h, at)
	if in.Message.Text != "giá gói Pro?\ncần gấp" || in.Message.ID != "m3" {
		t.Errorf("message %+v", in.Message)
	}
	if len(in.Contact.Tags) != 1 || in.Contact.Tags[0] != "vip" || in.Contact.Score != 40 || in.Lead.Intent != "quote" || in.Contact.ChannelIDs["zalo"] != "u1" {
		t.Errorf("contact %+v lead %+v", in.Contact, in.Lead)
	}
}
