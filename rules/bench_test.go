package rules

import (
	"testing"
	"time"
)

func BenchmarkEvaluateDefault(b *testing.B) {
	rs, err := LoadDir("../examples/rules")
	if err != nil {
		b.Fatal(err)
	}
	in := Input{
		Now:          time.Date(2025, 6, 2, 9, 0, 0, 0, time.FixedZone("ICT", 7*3600)),
		Message:      Message{Text: "Chào shop, bên em cần phần mềm CRM cho 20 nhân viên, cho em xin báo giá và lịch demo trong tuần này nhé", Type: "text", Channel: "zalo", Author: "customer"},
		Contact:      Contact{Name: "Chị Hương", Email: "huong@congtyabc.vn", Messages: 3},
		Lead:         Lead{Intent: "purchase", Need: "CRM cho 20 nhân viên", Timeline: "trong tuần này", Budget: "khoảng 50 triệu", DecisionMaker: true, Confidence: 0.8},
		Conversation: Conversation{Turns: 3, State: "bot"},
	}
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
