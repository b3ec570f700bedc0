package claudefake

import (
	"encoding/json"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/switchboard-hub/switchboard/plugins/claude/internal/vntext"
)

// keyword lists, folded (no diacritics, lowercase), matched as whole words.
var intentKeywords = []struct {
	intent string
	words  []string
}{
	{"spam", []string{"casino", "ca cuoc", "vay tien nhanh", "kiem tien online", "bitcoin", "crypto", "xo so", "lottery", "free money", "viagra", "click vao link"}},
	{"human_request", []string{"nhan vien", "nguoi that", "tu van vien", "gap nguoi", "human", "real person", "talk to someone", "representative", "speak to a person", "agent"}},
	{"complaint", []string{"khieu nai", "that vong", "te qua", "qua te", "buc minh", "bi loi", "hoan tien", "complain", "complaint", "refund", "terrible", "awful", "angry", "broken", "worst"}},
	{"demo", []string{"demo", "dung thu", "trial", "trai nghiem"}},
	{"quote", []string{"bao gia", "gia", "bao nhieu tien", "bao nhieu", "chi phi", "price", "prices", "pricing", "quote", "cost", "how much"}},
	{"support", []string{"ho tro", "khong dang nhap", "khong vao duoc", "cai dat", "huong dan", "help", "support", "how do i", "cannot", "error", "bug"}},
	{"inquiry", []string{"cho hoi", "muon biet", "tim hieu", "thong tin", "quan tam", "info", "information", "interested", "hello", "hi", "chao", "xin chao"}},
}

// Folding merges words ("gấp" urgent and "gặp" meet; "ngay" now and
// "ngày" day), so only unambiguous phrases are listed.
var timelineWords = []string{"hom nay", "ngay lap tuc", "cang som cang tot", "tuan nay", "tuan sau", "thang nay", "thang sau", "quy nay", "nam nay",
	"asap", "today", "this week", "next week", "this month", "next month", "urgent", "immediately"}

var decisionYes = []string{"giam doc", "chu doanh nghiep", "chu cua hang", "toi la chu", "toi quyet dinh", "owner", "ceo", "founder", "director", "i decide"}
var decisionNo = []string{"sep", "hoi y kien", "can duyet", "my boss", "need approval", "ask my manager"}

var moneyRe = regexp.MustCompile(`(?i)(\$\s?\d[\d.,]*(\s?[km])?|\d[\d.,]*\s?(triệu|trieu|tr|tỷ|tỉ|ty|nghìn|ngàn|ngan|nghin|k|usd|vnd|vnđ|đồng|dong|đ|\$))`)

var replies = map[string][2]string{ // intent → {vi, en}
	"spam":          {"Dạ, em chỉ hỗ trợ các câu hỏi về sản phẩm và dịch vụ của cửa hàng ạ.", "I can only help with questions about our products and services."},
	"human_request": {"Dạ, em đã ghi nhận. Em sẽ chuyển cuộc trò chuyện cho nhân viên tư vấn, anh/chị vui lòng chờ phản hồi tại đây ạ.", "Noted — I'm passing this conversation to our team, and someone will reply here as soon as they can."},
	"complaint":     {"Dạ, em rất tiếc về trải nghiệm của anh/chị. Em đã ghi nhận và sẽ chuyển cho bộ phận chăm sóc khách hàng xử lý ngay ạ.", "I'm sorry about your experience. I've noted it and am passing it to our support team right away."},
	"demo":          {"Dạ, em rất vui được sắp xếp buổi demo. Anh/chị cho em xin thời gian thuận tiện và số người tham dự nhé.", "Happy to set up a demo. What time suits you, and how many people will join?"},
	"quote":         {"Dạ, để báo giá chính xác, nhân viên kinh doanh sẽ xác nhận giá với anh/chị ạ. Anh/chị cần cho bao nhiêu người dùng ạ?", "A member of our sales team will confirm the exact price. How many users do you need?"},
	"support":       {"Dạ, em sẽ hỗ trợ anh/chị. Anh/chị mô tả giúp em lỗi đang gặp phải nhé.", "I'll help you with that. Could you describe what is going wrong?"},
	"inquiry":       {"Dạ, em chào anh/chị! Anh/chị đang quan tâm đến sản phẩm nào để em tư vấn ạ?", "Hello! Which of our products are you interested in?"},
	"other":         {"Dạ, em đã nhận được tin nhắn. Anh/chị cần em hỗ trợ gì thêm ạ?", "Thanks for your message. How can I help?"},
}

// RuleOfThumb is the default responder: it reads the last user message,
// guesses intent and BANT facts from keywords in Vietnamese and English,
// answers in the customer's language, quotes a price only when the prompt's
// <knowledge> block holds one, and shapes the facts to the request's schema.
func RuleOfThumb(req *Request) Reply {
	text := req.LastUserText()
	orig := splitWords(norm.NFC.String(text))
	folded := splitWords(string(vntext.FoldRunes(text)))
	find := func(list []string) (string, bool) {
		for _, p := range list {
			if i := vntext.IndexPhrase(folded, strings.Fields(p)); i >= 0 {
				return strings.Join(orig[i:i+len(strings.Fields(p))], " "), true
			}
		}
		return "", false
	}
	intent, confidence := "other", 0.3
	for _, k := range intentKeywords {
		if _, ok := find(k.words); ok {
			intent, confidence = k.intent, 0.7
			break
		}
	}
	if intent == "other" && strings.Contains(text, "?") {
		intent, confidence = "inquiry", 0.5
	}
	facts := map[string]any{"intent": intent, "confidence": confidence,
		"need": nil, "budget": nil, "timeline": nil, "decision_maker": nil}
	estimate := map[string]int{"quote": 50, "demo": 55, "inquiry": 30, "human_request": 45, "support": 15, "complaint": 10, "spam": 0, "other": 10}[intent]
	if m := moneyRe.FindString(text); m != "" && intent != "spam" {
		facts["budget"] = strings.TrimSpace(m)
		estimate += 15
	}
	if t, ok := find(timelineWords); ok && intent != "spam" {
		facts["timeline"] = t
		estimate += 15
	}
	if _, ok := find(decisionYes); ok {
		facts["decision_maker"] = true
		estimate += 15
	} else if _, ok := find(decisionNo); ok {
		facts["decision_maker"] = false
	}
	switch intent {
	case "quote", "demo", "inquiry":
		facts["need"] = truncate(strings.TrimSpace(text), 120)
	}
	facts["lead_estimate"] = min(estimate, 100)
	action := map[string]string{"spam": "ignore", "human_request": "handoff_to_sale", "complaint": "handoff_to_support",
		"demo": "handoff_to_sale", "quote": "ask_info", "support": "reply", "inquiry": "reply", "other": "reply"}[intent]
	if intent == "quote" && facts["budget"] != nil && facts["timeline"] != nil {
		action = "handoff_to_sale"
	}
	facts["action"] = action
	lang := 1
	if vntext.HasDiacritics(text) || len(folded) > 0 && looksVietnamese(folded) {
		lang = 0
	}
	reply := replies[intent][lang]
	if intent == "quote" {
		if line := priceLine(req.SystemText()); line != "" {
			if lang == 0 {
				reply = "Dạ, theo bảng giá hiện tại: " + line + ". Anh/chị cần thêm thông tin gì không ạ?"
			} else {
				reply = "Our current price list says: " + line + ". Anything else you would like to know?"
			}
		}
	}
	facts["reply"] = reply
	return FactsReply(Conform(facts, req.Schema()))
}

func looksVietnamese(folded []string) bool {
	for _, w := range folded {
		switch w {
		case "toi", "ban", "khong", "cho", "muon", "gia", "bao", "nhieu", "anh", "chi", "em", "a", "nhe":
			return true
		}
	}
	return false
}

func splitWords(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// priceLine returns the first line of the prompt's <knowledge> block that
// states an amount, trimmed of list markup.
func priceLine(system string) string {
	start := strings.Index(system, "<knowledge>")
	end := strings.Index(system, "</knowledge>")
	if start < 0 || end < start {
		return ""
	}
	for _, line := range strings.Split(system[start:end], "\n") {
		if moneyRe.MatchString(line) {
			return strings.TrimRight(strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(line), "-*# ")), ".")
		}
	}
	return ""
}

// Conform shapes facts to a JSON schema so the default responder answers
// validly for any schema a caller sends: known properties of the right type
// are kept, missing required ones get a plausible zero value (the first
// enum value, the minimum, false, "" or null), and properties the schema
// does not allow are dropped. A nil schema returns facts unchanged.
func Conform(facts map[string]any, schema json.RawMessage) any {
	if len(schema) == 0 {
		return facts
	}
	var s map[string]any
	if err := json.Unmarshal(schema, &s); err != nil {
		return facts
	}
	return conformValue(facts, s)
}

func conformValue(v any, s map[string]any) any {
	if fits(v, s) && !isObjectSchema(s) {
		return v
	}
	if isObjectSchema(s) {
		in, _ := v.(map[string]any)
		props, _ := s["properties"].(map[string]any)
		out := map[string]any{}
		required := map[string]bool{}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if name, ok := r.(string); ok {
					required[name] = true
				}
			}
		}
		for name, ps := range props {
			sub, _ := ps.(map[string]any)
			val, has := in[name]
			switch {
			case has && fits(val, sub):
				out[name] = conformValue(val, sub)
			case has || required[name]:
				out[name] = zeroFor(sub)
			}
		}
		return out
	}
	return zeroFor(s)
}

func isObjectSchema(s map[string]any) bool {
	t, _ := s["type"].(string)
	return t == "object"
}

// fits is a loose check of v against s: type, enum and anyOf.
func fits(v any, s map[string]any) bool {
	if s == nil {
		return true
	}
	if enum, ok := s["enum"].([]any); ok {
		for _, e := range enum {
			if e == v {
				return true
			}
		}
		return false
	}
	if anyOf, ok := s["anyOf"].([]any); ok {
		for _, alt := range anyOf {
			if m, ok := alt.(map[string]any); ok && fits(v, m) {
				return true
			}
		}
		return false
	}
	var types []string
	switch t := s["type"].(type) {
	case string:
		types = []string{t}
	case []any:
		for _, x := range t {
			if str, ok := x.(string); ok {
				types = append(types, str)
			}
		}
	default:
		return true
	}
	for _, t := range types {
		switch x := v.(type) {
		case nil:
			if t == "null" {
				return true
			}
		case string:
			if t == "string" {
				return true
			}
		case bool:
			if t == "boolean" {
				return true
			}
		case float64, int:
			f := toFloat(x)
			if t == "number" || t == "integer" && f == float64(int64(f)) {
				if lo, ok := s["minimum"].(float64); ok && f < lo {
					return false
				}
				if hi, ok := s["maximum"].(float64); ok && f > hi {
					return false
				}
				return true
			}
		case map[string]any:
			if t == "object" {
				return true
			}
		case []any:
			if t == "array" {
				return true
			}
		}
	}
	return false
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

func zeroFor(s map[string]any) any {
	if s == nil {
		return nil
	}
	if c, ok := s["const"]; ok {
		return c
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	if anyOf, ok := s["anyOf"].([]any); ok {
		for _, alt := range anyOf {
			if m, ok := alt.(map[string]any); ok && m["type"] == "null" {
				return nil
			}
		}
		if len(anyOf) > 0 {
			m, _ := anyOf[0].(map[string]any)
			return zeroFor(m)
		}
	}
	t, _ := s["type"].(string)
	if list, ok := s["type"].([]any); ok && len(list) > 0 {
		for _, x := range list {
			if x == "null" {
				return nil
			}
		}
		t, _ = list[0].(string)
	}
	switch t {
	case "string":
		return ""
	case "integer", "number":
		if lo, ok := s["minimum"].(float64); ok {
			return lo
		}
		return 0
	case "boolean":
		return false
	case "array":
		return []any{}
	case "object":
		return conformValue(map[string]any{}, s)
	}
	return nil
}
