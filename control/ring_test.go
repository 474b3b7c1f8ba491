package control

import "testing"

// TestRing: the log keeps the newest decisions, numbers them from 1, and
// says how many asked for are gone.
func TestRing(t *testing.T) {
	r := newRing(4)
	if out, next, dropped := r.since(0, 10); len(out) != 0 || next != 0 || dropped != 0 {
		t.Fatalf("empty: %v %d %d", out, next, dropped)
	}
	for i := 0; i < 6; i++ {
		r.add(Decision{Dest: string(rune('a' + i))})
	}
	rows := []struct {
		since         uint64
		limit         int
		first, n      int
		next, dropped uint64
	}{
		{0, 10, 3, 4, 6, 2},  // 1 and 2 are gone
		{2, 10, 3, 4, 6, 0},  // exactly the oldest kept
		{4, 1, 5, 1, 5, 0},   // a page of one
		{6, 10, 0, 0, 6, 0},  // nothing new
		{99, 10, 0, 0, 6, 0}, // from the future: start over from now
	}
	for _, row := range rows {
		out, next, dropped := r.since(row.since, row.limit)
		if len(out) != row.n || next != row.next || dropped != row.dropped || (row.n > 0 && out[0].Seq != uint64(row.first)) {
			t.Errorf("since(%d, %d): %d decisions from %v, next %d, dropped %d; want %d from %d, next %d, dropped %d",
				row.since, row.limit, len(out), out, next, dropped, row.n, row.first, row.next, row.dropped)
		}
		for i, d := range out {
			if d.Seq != uint64(row.first+i) || d.Dest != string(rune('a'+row.first+i-1)) {
				t.Errorf("since(%d): entry %d is %+v", row.since, i, d)
			}
		}
	}
}
