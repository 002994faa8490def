package bufpool

import (
	"errors"
	"sync"
	"testing"
)

func TestSlabPoolExhaustsAndRecovers(t *testing.T) {
	p := NewSlabPool(3, 16)
	var got []*Slab
	for i := 0; i < 3; i++ {
		s, err := p.Get()
		if err != nil {
			t.Fatalf("Get %d: %v", i, err)
		}
		if len(s.Buf) != 16 || cap(s.Buf) != 16 {
			t.Fatalf("slab %d: len %d cap %d, want 16/16", i, len(s.Buf), cap(s.Buf))
		}
		got = append(got, s)
	}
	if _, err := p.Get(); !errors.Is(err, ErrExhausted) {
		t.Fatalf("4th Get: err %v, want ErrExhausted", err)
	}
	if p.InUse() != 3 {
		t.Fatalf("InUse %d, want 3", p.InUse())
	}
	p.Put(got[1])
	s, err := p.Get()
	if err != nil || s != got[1] {
		t.Fatalf("Get after Put: %p %v, want the returned slab %p", s, err, got[1])
	}
}

func TestSlabsDoNotOverlap(t *testing.T) {
	p := NewSlabPool(4, 8)
	var slabs []*Slab
	for i := 0; i < 4; i++ {
		s, _ := p.Get()
		for j := range s.Buf {
			s.Buf[j] = byte(i)
		}
		slabs = append(slabs, s)
	}
	for i, s := range slabs {
		for _, b := range s.Buf {
			if b != byte(i) {
				t.Fatalf("slab %d overwritten by a neighbour", i)
			}
		}
		if len(append(s.Buf[:8], 'x')) != 9 || slabs[(i+1)%4].Buf[0] == 'x' {
			t.Fatalf("append past slab %d reached its neighbour", i)
		}
	}
}

func TestDoublePutPanics(t *testing.T) {
	p := NewSlabPool(1, 8)
	s, _ := p.Get()
	p.Put(s)
	defer func() {
		if recover() == nil {
			t.Fatal("second Put did not panic")
		}
	}()
	p.Put(s)
}

func TestConcurrentGetPut(t *testing.T) {
	p := NewSlabPool(64, 32)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				s, err := p.Get()
				if err != nil {
					continue
				}
				s.Buf[0] = 1
				p.Put(s)
			}
		}()
	}
	wg.Wait()
	if p.InUse() != 0 {
		t.Fatalf("InUse %d after all Puts", p.InUse())
	}
}

func TestReleaseZeroesAndKeepsSlabUsable(t *testing.T) {
	p := NewSlabPool(4, 8192)
	s, _ := p.Get()
	for i := range s.Buf {
		s.Buf[i] = 0xAB
	}
	p.Release(s)
	for i, b := range s.Buf {
		if b != 0 {
			t.Fatalf("byte %d is %#x after Release, want 0 (pages handed back)", i, b)
		}
	}
	s.Buf[100] = 7 // faults a fresh page in
	if s.Buf[100] != 7 {
		t.Fatal("slab unusable after Release")
	}
}
