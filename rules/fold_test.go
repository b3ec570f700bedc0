package rules

import (
	"testing"

	"golang.org/x/text/unicode/norm"
)

func TestFold(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Mua ngay tuần này", "mua ngay tuan nay"},
		{"mua ngay tuan nay", "mua ngay tuan nay"},
		{"ĐẶT HÀNG", "dat hang"},
		{"đ Đ Ð", "d d d"},
		{"Trải nghiệm thử", "trai nghiem thu"},
		{"ươ ƯƠ ỳ ỷ ỹ ý ỵ", "uo uo y y y y y"},
		{"àáảãạ ăằắẳẵặ âầấẩẫậ", "aaaaa aaaaaa aaaaaa"},
		{"èéẻẽẹ êềếểễệ ìíỉĩị òóỏõọ ôồốổỗộ ơờớởỡợ ùúủũụ ưừứửữự", "eeeee eeeeee iiiii ooooo oooooo oooooo uuuuu uuuuuu"},
		{norm.NFD.String("Gặp nhân viên"), "gap nhan vien"}, // decomposed input
		{"Café Zoë naïve", "cafe zoe naive"},
		{"Привет", "привет"}, // other scripts are only lowercased
		{"", ""},
		{"price: 100$!", "price: 100$!"},
	}
	for _, c := range cases {
		if got := Fold(c.in); got != c.want {
			t.Errorf("Fold(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestFoldAlreadyFoldedDoesNotAllocate(t *testing.T) {
	s := "xin chao, cho em hoi gia"
	if n := testing.AllocsPerRun(100, func() { _ = Fold(s) }); n != 0 {
		t.Errorf("Fold of folded text: %v allocations", n)
	}
}

func TestWords(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Báo giá?!", " bao gia "},
		{"  Cho em,,, xin   BÁO-GIÁ.  ", " cho em xin bao gia "},
		{"", " "},
		{"!!! 👍 ...", " "},
		{"CRM-2025 v2", " crm 2025 v2 "},
	}
	for _, c := range cases {
		if got := Words(c.in); got != c.want {
			t.Errorf("Words(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestExactWords(t *testing.T) {
	cases := []struct{ in, want string }{
		{"Gấp lắm!", " gấp lắm "},
		{norm.NFD.String("Gấp"), " gấp "}, // composed first
		{"Cần NGAY", " cần ngay "},
	}
	for _, c := range cases {
		if got := string(appendExactWords(nil, c.in)); got != c.want {
			t.Errorf("exactWords(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMatchText(t *testing.T) {
	n := func(f textForm, s ...string) []string {
		out := make([]string, len(s))
		for i, x := range s {
			out[i] = normalizeNeedle(x, f)
		}
		return out
	}
	cases := []struct {
		text    string
		needles []string
		form    textForm
		want    bool
	}{
		{"Cho em xin BÁO GIÁ", n(formFold, "báo giá"), formFold, true},
		{"baogia", n(formFold, "bao gia"), formFold, false},
		{"Gia đình em", n(formWords, "gia"), formWords, true},
		{"Gia đình em", n(formWords, "giá bao nhiêu"), formWords, false},
		{"tham gia", n(formWords, "gia dinh"), formWords, false},
		{"xgia dinh", n(formWords, "gia dinh"), formWords, false}, // not at a word boundary
		{"gia dinh", n(formWords, "gia dinh"), formWords, true},
		{"a gia, dinh", n(formWords, "gia dinh"), formWords, true}, // punctuation is a space
		{"gặp nhân viên", n(formExact, "gấp"), formExact, false},
		{"gấp lắm", n(formExact, "gấp"), formExact, true},
		{"ngày mai", n(formExact, "ngay"), formExact, false},
		{"cần ngay", n(formExact, "ngay"), formExact, true},
	}
	for _, c := range cases {
		if got := matchText(c.text, c.needles, c.form); got != c.want {
			t.Errorf("match(%q, %q, form %d) = %v, want %v", c.text, c.needles, c.form, got, c.want)
		}
	}
}

func TestIsBlank(t *testing.T) {
	for s, want := range map[string]bool{"": true, "  ": true, "?!": true, "👍🎉": true, "a": false, " 1 ": false, "ạ": false} {
		if got := isBlank(s); got != want {
			t.Errorf("isBlank(%q) = %v", s, got)
		}
	}
}

func FuzzFold(f *testing.F) {
	for _, s := range []string{"Mua ngay tuần này", "ĐẶT HÀNG", norm.NFD.String("Gặp nhân viên"), "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a := Fold(s)
		if Fold(a) != a && isFolded(a) {
			t.Errorf("Fold not idempotent on %q", s)
		}
		w := Words(s)
		if len(w) == 0 || w[0] != ' ' || w[len(w)-1] != ' ' {
			t.Errorf("Words(%q) = %q: not padded", s, w)
		}
	})
}
