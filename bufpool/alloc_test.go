//go:build !race

package bufpool

import "testing"

func TestGetPutAllocatesNothing(t *testing.T) {
	p := NewSlabPool(8, 64)
	if n := testing.AllocsPerRun(1000, func() {
		s, err := p.Get()
		if err != nil {
			t.Fatal(err)
		}
		p.Put(s)
	}); n != 0 {
		t.Fatalf("Get+Put allocates %v times, want 0", n)
	}
}
