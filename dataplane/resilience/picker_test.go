package resilience

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

func up(inFlight int64) Load   { return Load{InFlight: inFlight, Available: true} }
func down(inFlight int64) Load { return Load{InFlight: inFlight} }

func TestPickerPick(t *testing.T) {
	tests := []struct {
		name    string
		loads   []Load
		exclude int // -1: Pick
		// want lists the indexes the picker may return; the first call must
		// return want[0], and repeated calls must cycle through all of them.
		want []int
	}{
		{"nil", nil, -1, []int{-1}},
		{"empty", []Load{}, -1, []int{-1}},
		{"single", []Load{up(7)}, -1, []int{0}},
		{"single unavailable", []Load{down(0)}, -1, []int{-1}},
		{"all unavailable", []Load{down(0), down(1), down(0)}, -1, []int{-1}},
		{"least in-flight wins", []Load{up(3), up(1), up(2)}, -1, []int{1}},
		{"least in-flight wins at the end", []Load{up(3), up(2), up(0)}, -1, []int{2}},
		{"unavailable skipped though idle", []Load{down(0), up(5), up(4)}, -1, []int{2}},
		{"only one available", []Load{down(0), down(0), up(100)}, -1, []int{2}},
		{"ties rotate", []Load{up(1), up(1), up(1)}, -1, []int{0, 1, 2}},
		{"ties among the least only", []Load{up(2), up(1), up(3), up(1)}, -1, []int{1, 3}},
		{"ties skip unavailable", []Load{up(0), down(0), up(0)}, -1, []int{0, 2}},
		{"except the least takes the next", []Load{up(0), up(1), up(2)}, 0, []int{1}},
		{"except the only available", []Load{down(0), up(0)}, 1, []int{-1}},
		{"except with one other", []Load{up(0), up(9)}, 0, []int{1}},
		{"except among ties", []Load{up(0), up(0), up(0)}, 1, []int{0, 2}},
		{"except out of range is ignored", []Load{up(1), up(0)}, 5, []int{1}},
		{"except negative is ignored", []Load{up(1), up(0)}, -3, []int{1}},
		{"except an unavailable one", []Load{down(0), up(2), up(1)}, 0, []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Picker
			pick := func() int {
				if tt.exclude == -1 {
					return p.Pick(tt.loads)
				}
				return p.PickExcept(tt.loads, tt.exclude)
			}
			var got []int
			for range 2 * len(tt.want) {
				got = append(got, pick())
			}
			want := append(slices.Clone(tt.want), tt.want...)
			if !slices.Equal(got, want) {
				t.Errorf("picks = %v, want %v", got, want)
			}
		})
	}
}

func TestPickerTiesRotateEvenly(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var p Picker
			loads := make([]Load, n)
			for i := range loads {
				loads[i] = up(4)
			}
			counts := make([]int, n)
			for range 100 * n {
				counts[p.Pick(loads)]++
			}
			for i, c := range counts {
				if c != 100 {
					t.Errorf("endpoint %d picked %d times of %d, want 100 each: %v", i, c, 100*n, counts)
				}
			}
		})
	}
}

// TestPickerSpreadsWithInFlight plays requests that stay in flight for a
// while: equal endpoints must end with equal shares, and an endpoint that is
// slower (holds requests longer) must get fewer.
func TestPickerSpreadsWithInFlight(t *testing.T) {
	tests := []struct {
		name     string
		hold     []int // how many picks a request to each endpoint stays in flight
		min, max []int // bounds on each endpoint's share of 1200 picks
	}{
		{"equal", []int{3, 3}, []int{600, 600}, []int{600, 600}},
		{"equal three", []int{2, 2, 2}, []int{400, 400, 400}, []int{400, 400, 400}},
		{"one slow", []int{1, 8}, []int{900, 0}, []int{1200, 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Picker
			loads := make([]Load, len(tt.hold))
			for i := range loads {
				loads[i] = up(0)
			}
			type req struct{ ep, until int }
			var inflight []req
			counts := make([]int, len(loads))
			for step := range 1200 {
				// Finish the requests that are due, then pick for a new one.
				inflight = slices.DeleteFunc(inflight, func(r req) bool {
					if r.until <= step {
						loads[r.ep].InFlight--
						return true
					}
					return false
				})
				i := p.Pick(loads)
				counts[i]++
				loads[i].InFlight++
				inflight = append(inflight, req{i, step + tt.hold[i]})
			}
			for i, c := range counts {
				if c < tt.min[i] || c > tt.max[i] {
					t.Errorf("endpoint %d got %d picks, want %d..%d (all: %v)", i, c, tt.min[i], tt.max[i], counts)
				}
			}
		})
	}
}

func TestPickerConcurrent(t *testing.T) {
	var p Picker
	loads := []Load{up(1), up(1), down(0), up(1)}
	const goroutines, picks = 8, 3000
	counts := make([][]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		counts[g] = make([]int, len(loads))
		wg.Go(func() {
			for i := range picks {
				if i%2 == 0 {
					counts[g][p.Pick(loads)]++
				} else {
					counts[g][p.PickExcept(loads, 0)]++
				}
			}
		})
	}
	wg.Wait()
	total := make([]int, len(loads))
	for _, c := range counts {
		for i, n := range c {
			total[i] += n
		}
	}
	if total[2] != 0 {
		t.Errorf("unavailable endpoint picked %d times", total[2])
	}
	// Half the picks (Pick) rotate over 0, 1, 3, the other half (PickExcept
	// 0) over 1, 3; each kind has its own rotation, so the totals are exact
	// however the goroutines interleave.
	all := goroutines * picks
	for i, want := range map[int]int{0: all / 6, 1: all * 5 / 12, 3: all * 5 / 12} {
		if total[i] != want {
			t.Errorf("endpoint %d picked %d times, want %d (all: %v)", i, total[i], want, total)
		}
	}
}

func TestFullJitter(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		r    float64
		want time.Duration
	}{
		{"zero rnd", 8 * time.Second, 0, 0},
		{"half", 8 * time.Second, 0.5, 4 * time.Second},
		{"near one", time.Second, 0.999, 999 * time.Millisecond},
		{"zero duration", 0, 0.5, 0},
		{"negative duration", -time.Second, 0.5, 0},
		{"rnd above one is clamped", time.Second, 3, time.Second},
		{"negative rnd is clamped", time.Second, -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FullJitter(tt.d, func() float64 { return tt.r }); got != tt.want {
				t.Errorf("FullJitter(%v, %v) = %v, want %v", tt.d, tt.r, got, tt.want)
			}
		})
	}
	// Without rnd: math/rand/v2, always in range, and not constant.
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := FullJitter(time.Second, nil)
		if d < 0 || d > time.Second {
			t.Fatalf("FullJitter(1s, nil) = %v, out of [0, 1s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 900 {
		t.Errorf("FullJitter(1s, nil) gave only %d distinct values in 1000 draws", len(seen))
	}
}

func TestScheduleJitterPerStep(t *testing.T) {
	r := 0.25
	s := Schedule{Jitter: true, Rand: func() float64 { return r }}
	for failure, want := range map[int]time.Duration{
		1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 3: time.Second, 4: 2 * time.Second, 9: 2 * time.Second,
	} {
		if got := s.Delay(failure); got != want {
			t.Errorf("jittered Delay(%d) = %v, want %v", failure, got, want)
		}
	}
	s.Rand = nil
	for failure := 1; failure <= 5; failure++ {
		if d := s.Delay(failure); d < 0 || d > s.Last() {
			t.Errorf("Delay(%d) with math/rand = %v, out of range", failure, d)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{2, 3, 16} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var p Picker
			loads := make([]Load, n)
			for i := range loads {
				loads[i] = up(int64(i % 2)) // half tie at the least
			}
			b.ReportAllocs()
			for b.Loop() {
				if p.Pick(loads) < 0 {
					b.Fatal("no pick")
				}
			}
		})
	}
}

func BenchmarkPickParallel(b *testing.B) {
	var p Picker
	loads := []Load{up(0), up(0), up(0)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Pick(loads)
		}
	})
}
