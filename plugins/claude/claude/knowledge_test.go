package claude

import (
	"context"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/plugins/claude/claudefake"
	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

func titles(secs []Section) []string {
	var out []string
	for _, s := range secs {
		out = append(out, s.Title)
	}
	return out
}

func TestKnowledgeFiles(t *testing.T) {
	yml, err := LoadKnowledge(abs(t, "knowledge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if yml.Len() != 6 {
		t.Fatalf("yaml: %d sections, want 6", yml.Len())
	}
	pro := yml.sections[1]
	if pro.Title != "Gói Pro (Pro plan)" || !strings.HasPrefix(pro.Content, "price: 599.000đ") || pro.Keywords[len(pro.Keywords)-1] != "products" {
		t.Errorf("yaml entry: %+v", pro)
	}
	md, err := LoadKnowledge(abs(t, "knowledge.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "Sản phẩm", "Sản phẩm > Gói Cơ bản", "Sản phẩm > Gói Pro", "Chính sách", "Chính sách > Bảo hành", "Chính sách > Hoàn tiền"}
	got := titles(md.sections)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("markdown titles %q, want %q", got, want)
	}
	for _, bad := range []string{"products: [[1, 2]]", "sections: 5", "products:\n  - title: x\n    price: {a: 1}", "[unclosed"} {
		if _, err := ParseKnowledgeYAML([]byte(bad)); err == nil {
			t.Errorf("ParseKnowledgeYAML(%q) accepted a malformed file", bad)
		}
	}
}

func TestRetrieve(t *testing.T) {
	kb, err := LoadKnowledge(abs(t, "knowledge.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query string
		first string
		not   string
	}{
		{"Gói Pro giá bao nhiêu?", "Gói Pro (Pro plan)", "Chính sách hoàn tiền (Refund policy)"},
		{"goi pro gia bao nhieu", "Gói Pro (Pro plan)", "Chính sách hoàn tiền (Refund policy)"}, // no diacritics
		{"GÓI PRO", "Gói Pro (Pro plan)", ""},
		{"Nếu không hài lòng có được hoàn tiền không?", "Chính sách hoàn tiền (Refund policy)", "Gói Pro (Pro plan)"},
		{"bao hanh the nao", "Bảo hành và hỗ trợ (Warranty and support)", ""},
		{"Can I get a demo?", "Dùng thử và demo (Trial and demo)", ""},
		{"refund please", "Chính sách hoàn tiền (Refund policy)", ""},
	}
	for _, tt := range tests {
		got := kb.Retrieve(tt.query, 3, 0)
		if len(got) == 0 || got[0].Title != tt.first {
			t.Errorf("Retrieve(%q) = %q, want %q first", tt.query, titles(got), tt.first)
		}
		for _, s := range got {
			if tt.not != "" && s.Title == tt.not {
				t.Errorf("Retrieve(%q) returned the unrelated %q", tt.query, tt.not)
			}
		}
	}
	if got := kb.Retrieve("thời tiết hôm nay thế nào", 3, 0); len(got) != 0 {
		t.Errorf("an unrelated message retrieved %q", titles(got))
	}
	if got := kb.Retrieve("gói", 2, 0); len(got) != 2 {
		t.Errorf("top-k: %q", titles(got))
	}
	if got := kb.Retrieve("gói pro cơ bản doanh nghiệp", 3, 10); len(got) != 1 {
		t.Errorf("max chars keeps the best section only: %q", titles(got))
	}
}

func TestPriceGuard(t *testing.T) {
	tests := []struct {
		name       string
		reply      string
		agentQuote string
		wantGuard  bool
	}{
		{name: "price from the knowledge file", reply: "Dạ, gói Pro giá 599.000đ mỗi người dùng mỗi tháng ạ."},
		{name: "same price written another way", reply: "Dạ, gói Pro 599k/tháng ạ."},
		{name: "invented price", reply: "Dạ, gói Pro giá 450.000đ ạ.", wantGuard: true},
		{name: "rounded price", reply: "Dạ, gói Pro khoảng 0,6 triệu ạ.", wantGuard: true},
		{name: "converted to dollars", reply: "The Pro plan is about $25 a month.", wantGuard: true},
		{name: "price a human agent quoted", reply: "Dạ đúng rồi, giá ưu đãi 500.000đ ạ.", agentQuote: "Em chốt giá ưu đãi 500.000đ cho anh nhé."},
		{name: "no price at all", reply: "Dạ, nhân viên kinh doanh sẽ báo giá cho anh ạ."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t)
			p, _ := newPlugin(t, testConfig(t, f, nil))
			req := ask("c", "Gói Pro giá bao nhiêu?")
			if tt.agentQuote != "" {
				req.History = append([]sdk.Turn{{Role: "agent", Text: tt.agentQuote}}, req.History...)
			}
			f.Script("c", claudefake.FactsReply(facts(tt.reply)))
			res, err := p.Generate(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			got := mustValid(t, res.Structured)
			if tt.wantGuard {
				if !res.Fallback || res.FallbackReason != "unverified_price" || res.Text != defaultPriceReply["vi"] || got["reply"] != res.Text {
					t.Errorf("got %+v; want the reply replaced by the price confirmation and flagged", res)
				}
				if got["intent"] != "quote" {
					t.Error("the facts stay: only the reply is replaced")
				}
				return
			}
			if res.Fallback || res.Text != tt.reply {
				t.Errorf("got %q (fallback %q), want the reply kept", res.Text, res.FallbackReason)
			}
		})
	}

	t.Run("off by config", func(t *testing.T) {
		f := startFake(t)
		p, _ := newPlugin(t, testConfig(t, f, map[string]any{"price_guard": false}))
		f.ScriptNext(claudefake.FactsReply(facts("Dạ, 450.000đ ạ.")))
		res, err := p.Generate(context.Background(), ask("c", "giá?"))
		if err != nil || res.Fallback {
			t.Errorf("%+v %v", res, err)
		}
	})

	t.Run("human claim is replaced", func(t *testing.T) {
		f := startFake(t)
		p, _ := newPlugin(t, testConfig(t, f, nil))
		f.ScriptNext(claudefake.FactsReply(facts("Dạ, em là người thật chứ không phải bot ạ.")))
		res, err := p.Generate(context.Background(), ask("c", "Bạn là người thật à?"))
		if err != nil || !res.Fallback || res.FallbackReason != "human_claim" || res.Text != defaultFallbackReply["vi"] {
			t.Errorf("%+v %v", res, err)
		}
	})
}
