package rules

import (
	"testing"
	"time"
)

// benchInput is one typical message: a decision maker asking for a quote and
// a demo, with LLM findings from earlier turns.
func benchInput() Input {
	return Input{
		Now:          time.Date(2025, 6, 2, 9, 0, 0, 0, time.FixedZone("ICT", 7*3600)),
		Message:      Message{Text: "Chào shop, bên em cần phần mềm CRM cho 20 nhân viên, cho em xin báo giá và lịch demo trong tuần này nhé", Type: "text", Channel: "zalo", Author: "customer"},
		Contact:      Contact{Name: "Chị Hương", Email: "huong@congtyabc.vn", Messages: 3},
		Lead:         Lead{Intent: "purchase", Need: "CRM cho 20 nhân viên", Timeline: "trong tuần này", Budget: "khoảng 50 triệu", DecisionMaker: true, Confidence: 0.8},
		Conversation: Conversation{Turns: 3, State: "bot"},
	}
}

// BenchmarkEvaluateDefault evaluates the default rule set (examples/rules)
// against one message. cpu-ns/op is the process's CPU time per evaluation,
// which a busy shared machine distorts less than wall time.
func BenchmarkEvaluateDefault(b *testing.B) {
	rs, err := LoadDir("../examples/rules")
	if err != nil {
		b.Fatal(err)
	}
	in := benchInput()
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		if _, err := rs.Evaluate(in); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

func BenchmarkEvaluateDefaultParallel(b *testing.B) {
	rs, err := LoadDir("../examples/rules")
	if err != nil {
		b.Fatal(err)
	}
	in := benchInput()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rs.Evaluate(in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkLoadDefault(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := LoadDir("../examples/rules"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestEvaluateAllocations keeps the hot path lean: the only allocations are
// the decision itself (Decision, its firings, the handoff, its filled-in
// out-of-hours message and the follow-ups).
func TestEvaluateAllocations(t *testing.T) {
	rs, err := LoadDir("../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	in := benchInput()
	if n := testing.AllocsPerRun(200, func() { rs.Evaluate(in) }); n > 5 {
		t.Errorf("%v allocations per evaluation, want at most 5", n)
	}
}
