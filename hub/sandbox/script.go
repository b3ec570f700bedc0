package sandbox

// Scenario is one scripted conversation.
type Scenario struct {
	Title    string
	Channel  string // plugin instance: zalo or whatsapp
	Customer string // display name
	User     string // WhatsApp: the number's first digits (the rest are random); Zalo: generated
	Steps    []Step
	// Expect says what the sandbox's own test checks; the view prints it
	// as the scenario's subtitle.
	Expect string
}

// Step is one message in a scenario: the customer's, or an agent's reply
// typed in the provider's own app (which reaches the hub as an echo).
type Step struct {
	Agent     bool
	AgentName string // who typed it, for the view
	Text      string
}

// Scenarios are the conversations Play runs, in order. The LLM is
// claudefake's default responder, which reads intent and BANT facts from
// Vietnamese and English keywords the way the real model is prompted to;
// scores follow from the default rules (examples/rules).
func Scenarios() []Scenario {
	return []Scenario{
		{
			Title: "A hot lead on Zalo", Channel: "zalo", Customer: "Nguyễn Văn An",
			Expect: "warm after the first message, hot after the second: handed off to sales and assigned",
			Steps: []Step{
				{Text: "Chào shop, bên mình đang tìm phần mềm CRM cho đội bán hàng 20 người, cần triển khai trong tuần này"},
				{Text: "Tôi là giám đốc, ngân sách khoảng 50 triệu. Gửi mình báo giá gói Pro nhé"},
			},
		},
		{
			Title: "A complaint on Zalo", Channel: "zalo", Customer: "Trần Thị Bình",
			Expect: "routed to support with high priority and handed to an agent trained for complaints",
			Steps: []Step{
				{Text: "Phần mềm bên em cứ bị lỗi suốt, tôi rất thất vọng và muốn khiếu nại!"},
			},
		},
		{
			Title: "A spammer on Zalo", Channel: "zalo", Customer: "Kiếm Tiền 24h",
			Expect: "a harmless first message, then spam: the score is set to 0",
			Steps: []Step{
				{Text: "Chào shop, shop bán những gói nào vậy?"},
				{Text: "Kiếm tiền online 5 triệu/ngày tại nhà, click vào link bit.ly/kiem-tien-nhanh để nhận thưởng!!!"},
			},
		},
		{
			Title: "Outside working hours on WhatsApp", Channel: "whatsapp", Customer: "John Carter", User: "4477009",
			Expect: "asks for a person while the English desk is closed: told when it opens, queued for the desk",
			Steps: []Step{
				{Text: "Hi, I'd like to talk to a real person about pricing for my team"},
			},
		},
		{
			Title: "A person answers from the WhatsApp Business App", Channel: "whatsapp", Customer: "Maria Garcia", User: "346001",
			Expect: "the bot answers, a salesperson replies from the app (an echo): the bot steps aside",
			Steps: []Step{
				{Text: "Hello! Can you give me and my team the demo of your Pro plan?"},
				{Agent: true, AgentName: "Minh", Text: "Hi Maria, this is Minh from the sales team. I can show you the demo tomorrow at 10:00."},
				{Text: "Perfect, see you tomorrow!"},
			},
		},
	}
}
