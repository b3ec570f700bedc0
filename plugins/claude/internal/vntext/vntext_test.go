package vntext

import (
	"strings"
	"testing"
)

func TestFold(t *testing.T) {
	for in, want := range map[string]string{
		"Bảo Hành":             "bao hanh",
		"ĐẶT HÀNG ngay":        "dat hang ngay",
		"Giá gói Pro":          "gia goi pro",
		"ưu đãi tháng này":     "uu dai thang nay",
		"Hello World":          "hello world",
		"ba\u0309o ha\u0300nh": "bao hanh", // decomposed input
		"naïve café":           "naive cafe",
	} {
		if got := Fold(in); got != want {
			t.Errorf("Fold(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFoldRunesIsOneToOne(t *testing.T) {
	s := "Giá gói Pro: 599.000đ"
	if got, want := len(FoldRunes(s)), len([]rune(s)); got != want {
		t.Errorf("%d folded runes for %d", got, want)
	}
}

func TestHasDiacritics(t *testing.T) {
	for in, want := range map[string]bool{"giá": true, "gia": false, "How much?": false, "đ": true, "e\u0301": true} {
		if got := HasDiacritics(in); got != want {
			t.Errorf("HasDiacritics(%q) = %v", in, got)
		}
	}
}

func TestPhrases(t *testing.T) {
	words := Words("Cho em hỏi: bảo hành bao lâu?")
	if strings.Join(words, " ") != "cho em hoi bao hanh bao lau" {
		t.Errorf("Words = %q", words)
	}
	if IndexPhrase(words, []string{"bao", "hanh"}) != 3 || ContainsPhrase(words, []string{"hanh", "lau"}) || IndexPhrase(words, nil) != -1 {
		t.Error("phrase search")
	}
}

func BenchmarkFold(b *testing.B) {
	s := "Cho em hỏi gói Pro giá bao nhiêu, có bảo hành không ạ?"
	for b.Loop() {
		Fold(s)
	}
}
