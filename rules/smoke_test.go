package rules

import (
	"fmt"
	"testing"
	"time"
)

func TestSmoke(t *testing.T) {
	rs, err := LoadDir("../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 2, 9, 0, 0, 0, time.FixedZone("ICT", 7*3600))
	d, err := rs.Evaluate(Input{Now: now, Message: Message{Text: "Cho em xin BÁO GIÁ, muốn dùng thử demo", Type: "text"}, Lead: Lead{DecisionMaker: true, Timeline: "tuần này", Need: "CRM cho 20 nhân viên"}, Conversation: Conversation{Turns: 3}})
	fmt.Println(err)
	fmt.Println(d.Explain())
}
