package codec

import (
	"strings"
	"testing"
)

// readAll feeds in to a fresh ChunkedReader in pieces of size step (0 = whole) and collects the data.
func readAll(in []byte, step int) (data string, consumed int, done bool, err error) {
	var d ChunkedReader
	var sb strings.Builder
	for pos := 0; pos < len(in); {
		end := len(in)
		if step > 0 && pos+step < end {
			end = pos + step
		}
		piece := in[pos:end]
		for len(piece) > 0 {
			n, chunk, dn, e := d.Next(piece)
			sb.Write(chunk)
			consumed += n
			piece = piece[n:]
			if dn || e != nil {
				return sb.String(), consumed, dn, e
			}
		}
		pos = end
	}
	return sb.String(), consumed, false, nil
}

func TestChunkedValid(t *testing.T) {
	tests := []struct{ name, in, data string }{
		{"single chunk", "5|hello|0||", "hello"},
		{"several chunks", "5|hello|1|,|6| world|0||", "hello, world"},
		{"hex sizes any case", "a|0123456789|A|0123456789|0||", "01234567890123456789"},
		{"leading zeros", "0005|hello|000||", "hello"},
		{"extension", "5;name=value|hello|0;last||", "hello"},
		{"quoted extension", "5;n=\"a b;c\"|hello|0||", "hello"},
		{"BWS before extension", "5 \t;n|hello|0||", "hello"},
		{"trailers", "5|hello|0|Checksum: abc|X-Other:\tv ||", "hello"},
		{"empty trailer value", "1|x|0|T:||", "x"},
		{"empty body", "0||", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(crlf(tt.in) + "NEXT REQUEST")
			want := len(in) - len("NEXT REQUEST")
			for _, step := range []int{0, 1, 2, 3, 7} {
				data, consumed, done, err := readAll(in, step)
				if err != nil || !done || data != tt.data || consumed != want {
					t.Fatalf("step %d: data %q consumed %d done %v err %v", step, data, consumed, done, err)
				}
			}
			var d ChunkedReader
			n, done, err := d.Skip(in)
			if n != want || !done || err != nil {
				t.Fatalf("Skip: %d %v %v", n, done, err)
			}
			if !d.Done() {
				t.Error("Done")
			}
			if n, _, done, err := d.Next([]byte("more")); n != 0 || !done || err != nil {
				t.Errorf("Next after done: %d %v %v", n, done, err)
			}
			d.Reset()
			if d.Done() {
				t.Error("Reset")
			}
		})
	}
}

func TestChunkedRejects(t *testing.T) {
	tests := []struct {
		technique, in string
		offset        int
	}{
		{"non-hex size", "g|", 0},
		{"empty size line", "||", 0},
		{"negative size", "-1|x|0||", 0},
		{"0x prefix (parsed as 0 by some)", "0x5|hello|0||", 1},
		{"size overflow past int63 (wraps to small)", "8000000000000000|", 15},
		{"size overflow many digits", "1000000000000000000000005|hello|0||", 16},
		{"space after size without extension", "5 |hello|0||", 2},
		{"junk after size", "5x|hello|0||", 1},
		{"bare LF after size", "5\nhello|0||", 1},
		{"bare CR after size", "5\rhello|0||", 2},
		{"data longer than size (chunk-size smuggling)", "3|hello|0||", 6},
		{"bare LF after data", "5|hello\n0||", 8},
		{"CR without LF after data", "5|hello\rX0||", 9},
		{"CTL in extension", "5;a\x00|hello|0||", 3},
		{"bare LF in extension", "5;a\nb|hello|0||", 3},
		{"obs-fold trailer", "0|T: a| b||", 9},
		{"space before colon in trailer", "0|T : a||", 4},
		{"trailer without colon", "0|Trailer||", 10},
		{"CTL in trailer value", "0|T: \x01||", 6},
		{"bare LF ends trailer", "0|T: a\n|", 7},
		{"bare LF as final line", "0|\n", 3},
		{"junk after last chunk", "0|x|", 4},
		{"final CR without LF", "0|\rX", 4},
		{"extension line too long", "1;" + strings.Repeat("a", MaxChunkLineBytes) + "|x|0||", MaxChunkLineBytes},
	}
	for _, tt := range tests {
		t.Run(tt.technique, func(t *testing.T) {
			in := []byte(crlf(tt.in))
			for _, step := range []int{0, 1, 4} {
				_, consumed, done, err := readAll(in, step)
				se, ok := err.(*SyntaxError)
				if !ok || done {
					t.Fatalf("step %d: done %v err %v", step, done, err)
				}
				if se.Offset != tt.offset || consumed != tt.offset {
					t.Fatalf("step %d: offset %d consumed %d, want %d (%v)", step, se.Offset, consumed, tt.offset, err)
				}
			}
			var d ChunkedReader
			if _, _, err := d.Skip(in); err == nil {
				t.Fatal("Skip accepted")
			}
			// Sticky: the reader stays failed.
			if n, _, _, err2 := d.Next([]byte("0\r\n\r\n")); n != 0 || err2 == nil {
				t.Fatal("error not sticky")
			}
		})
	}
}

func TestChunkedNextReturnsOneDataRun(t *testing.T) {
	var d ChunkedReader
	in := []byte("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
	n, data, done, err := d.Next(in)
	if n != 6 || string(data) != "abc" || done || err != nil {
		t.Fatalf("first: %d %q %v %v", n, data, done, err)
	}
	n, data, _, _ = d.Next(in[6:])
	if n != 7 || string(data) != "de" {
		t.Fatalf("second: %d %q", n, data)
	}
	n, data, done, _ = d.Next(in[13:])
	if n != 7 || data != nil || !done {
		t.Fatalf("third: %d %q %v", n, data, done)
	}
}

func TestChunkedSkipPartial(t *testing.T) {
	var d ChunkedReader
	n, done, err := d.Skip([]byte("10\r\n0123"))
	if n != 8 || done || err != nil {
		t.Fatalf("%d %v %v", n, done, err)
	}
	n, done, err = d.Skip([]byte("456789abcdef\r\n0\r\n\r\nGET"))
	if n != 19 || !done || err != nil {
		t.Fatalf("%d %v %v", n, done, err)
	}
}
