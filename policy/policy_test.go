package policy

import "testing"

func TestAllowsEverything(t *testing.T) {
	tests := []struct {
		flags []FlagRule
		want  bool
	}{
		{[]FlagRule{{"default", "allow"}}, true},
		{[]FlagRule{{"allow", "10.0.0.0/8"}, {"default", "allow"}}, true},
		{[]FlagRule{{"deny", "10.0.0.1"}, {"default", "allow"}}, false},
		{[]FlagRule{{"log", "10.0.0.1"}, {"default", "allow"}}, false},
		{[]FlagRule{{"fail", "10.0.0.1=ECONNREFUSED:when=3"}, {"default", "allow"}}, false},
		{[]FlagRule{{"allow", "any"}}, false}, // the embedded default's deny stays behind it
	}
	for _, tt := range tests {
		p, err := Load(tt.flags, "", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.AllowsEverything(); got != tt.want {
			t.Errorf("%v: AllowsEverything() = %v, want %v", tt.flags, got, tt.want)
		}
	}
	if Default().AllowsEverything() {
		t.Error("the default policy denies most destinations")
	}
}
