package main

import "testing"

func TestChooseProcs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flag   int
		env    bool
		goes   int
		want   int
		hasErr bool
	}{
		{"default on 1 CPU", procsAuto, false, 1, 1, false},
		{"default on 2 CPUs", procsAuto, false, 2, 1, false},
		{"default on 3 CPUs", procsAuto, false, 3, 2, false},
		{"default on 8 CPUs", procsAuto, false, 8, 4, false},
		{"GOMAXPROCS set keeps Go's", procsAuto, true, 8, 0, false},
		{"0 keeps Go's", 0, false, 8, 0, false},
		{"explicit beats env", 3, true, 8, 3, false},
		{"explicit above CPUs", 16, false, 2, 16, false},
		{"negative", -2, false, 2, 0, true},
	} {
		got, err := chooseProcs(tc.flag, tc.env, tc.goes)
		if (err != nil) != tc.hasErr || got != tc.want {
			t.Errorf("%s: chooseProcs(%d, %v, %d) = %d, %v; want %d (error %v)", tc.name, tc.flag, tc.env, tc.goes, got, err, tc.want, tc.hasErr)
		}
	}
}

func TestChooseGCPercent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		flag   int
		env    bool
		want   int
		hasErr bool
	}{
		{"default", gcPercentAuto, false, defaultGCPercent, false},
		{"GOGC set keeps Go's", gcPercentAuto, true, 0, false},
		{"explicit", 150, false, 150, false},
		{"explicit beats env", 100, true, 100, false},
		{"off", -1, false, -1, false},
		{"zero", 0, false, 0, true},
		{"negative", -5, false, 0, true},
	} {
		got, err := chooseGCPercent(tc.flag, tc.env)
		if (err != nil) != tc.hasErr || got != tc.want {
			t.Errorf("%s: chooseGCPercent(%d, %v) = %d, %v; want %d (error %v)", tc.name, tc.flag, tc.env, got, err, tc.want, tc.hasErr)
		}
	}
}
