package rules

import (
	"math/rand/v2"
	"testing"

	"github.com/expr-lang/expr/vm"
)

// programs lists every compiled expression of a rule set.
func (rs *Ruleset) programs() []*program {
	var out []*program
	add := func(ps ...*program) {
		for _, p := range ps {
			if p != nil {
				out = append(out, p)
			}
		}
	}
	for _, c := range rs.conds {
		add(c.prog)
	}
	for _, r := range rs.scoring {
		add(r.when, r.amount)
	}
	for _, t := range rs.tiers {
		add(t.when)
	}
	for _, r := range rs.routes {
		add(r.when)
	}
	for _, r := range rs.handoffs {
		add(r.when)
	}
	for _, r := range rs.releases {
		add(r.when)
	}
	for _, r := range rs.followups {
		add(r.when, r.cancel)
	}
	return out
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func randomInput(r *rand.Rand) Input {
	words := []string{"", "a", "b", "m", "z", "giá", "Giá bao nhiêu", "crm", "CRM web", "web app", "gặp nhân viên", "vip", "text", "zalo", "x"}
	return Input{
		Now:     monday9,
		Message: Message{ID: pick(r, "", "1", "2"), Text: pick(r, words...), Channel: pick(r, "", "zalo", "whatsapp"), Type: pick(r, "", "text", "image"), Author: pick(r, "", "a", "customer")},
		Contact: Contact{Name: pick(r, "", "Lan"), Email: pick(r, "", "a@b.vn", "a@gmail.com"), Tags: pick(r, nil, []string{"vip"}, []string{"a", "b"}),
			Score: r.IntN(101), Messages: r.IntN(10)},
		Lead: Lead{Intent: pick(r, "", "a", "complaint"), Need: pick(r, words...), Budget: pick(r, "", "10"), Action: pick(r, "", "b"),
			DecisionMaker: r.IntN(2) == 0, Confidence: pick(r, 0, 0.5, 0.7, 0.9, 1), LeadEstimate: r.IntN(20) - 5,
			Extra: pick(r, nil, map[string]string{"x": "y"})},
		Conversation: Conversation{ID: pick(r, "", "1"), Turns: r.IntN(12) - 2, State: pick(r, "", "bot", "human")},
	}
}

// TestNativeMatchesVM checks that every expression built as a Go closure
// gives what expr's VM gives, on random inputs.
func TestNativeMatchesVM(t *testing.T) {
	for _, dir := range []string{"../examples/rules", "testdata/native"} {
		rs, err := LoadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		progs := rs.programs()
		native := 0
		for _, p := range progs {
			if p.native != nil || p.nativeInt != nil {
				native++
			}
		}
		t.Logf("%s: %d of %d expressions native", dir, native, len(progs))
		if native == 0 {
			t.Fatalf("%s: nothing native", dir)
		}
		r := rand.New(rand.NewPCG(1, 2))
		machine := &vm.VM{}
		for i := 0; i < 3000; i++ {
			in := randomInput(r)
			var e Env
			rs.prepare(&e, &in, machine, nil)
			e.Score = r.IntN(101)
			e.Tier = pick(r, "", "hot", "odd", "other")
			e.Team = pick(r, "", "sales")
			e.Priority = pick(r, "low", "normal", "high")
			for _, p := range progs {
				if p.native == nil && p.nativeInt == nil {
					continue
				}
				want, err := machine.Run(p.prog, e)
				if err != nil {
					t.Fatalf("%q: VM: %v", p.src, err)
				}
				var got any
				if p.native != nil {
					got = p.native(&e)
				} else {
					got = p.nativeInt(&e)
				}
				if got != want {
					t.Fatalf("%q on %+v: native %v, VM %v", p.src, in, got, want)
				}
			}
		}
	}
	rs, _ := LoadDir("testdata/native")
	for _, r := range rs.scoring {
		isVM := r.name[0] == 'v'
		if native := r.when.native != nil; native == isVM {
			t.Errorf("%s (%s): native = %v", r.name, r.when.src, native)
		}
	}
}
