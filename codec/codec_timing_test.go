package codec

import "testing"

var (
	benchRequest = []byte("GET /static/app.js?v=1234 HTTP/1.1\r\nHost: www.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n" +
		"Cookie: session=0123456789abcdef; theme=dark\r\nConnection: keep-alive\r\n\r\n")
	benchResponse = []byte("HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nServer: origin\r\n" +
		"Content-Type: application/javascript\r\nContent-Length: 12345\r\nCache-Control: max-age=3600\r\n" +
		"ETag: \"abc123\"\r\nConnection: keep-alive\r\n\r\n")
	benchChunked = func() []byte {
		var b []byte
		chunk := make([]byte, 4096)
		for i := range chunk {
			chunk[i] = 'x'
		}
		for i := 0; i < 16; i++ {
			b = append(b, "1000\r\n"...)
			b = append(b, chunk...)
			b = append(b, "\r\n"...)
		}
		return append(b, "0\r\n\r\n"...)
	}()
)

func BenchmarkParseRequest(b *testing.B) {
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		if _, err := ParseRequest(benchRequest, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseRequestRescan measures the resume strategy: a head arriving in 4 reads costs 4 scans.
func BenchmarkParseRequestRescan(b *testing.B) {
	var r Request
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	q := len(benchRequest) / 4
	for b.Loop() {
		for _, end := range []int{q, 2 * q, 3 * q} {
			if _, err := ParseRequest(benchRequest[:end], &r); err != ErrNeedMore {
				b.Fatal(err)
			}
		}
		if _, err := ParseRequest(benchRequest, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseResponse(b *testing.B) {
	var r Response
	b.ReportAllocs()
	b.SetBytes(int64(len(benchResponse)))
	for b.Loop() {
		if _, err := ParseResponse(benchResponse, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChunkedSkip(b *testing.B) {
	var d ChunkedReader
	b.ReportAllocs()
	b.SetBytes(int64(len(benchChunked)))
	for b.Loop() {
		d.Reset()
		if _, done, err := d.Skip(benchChunked); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}

func BenchmarkAppendProxyRequest(b *testing.B) {
	var r Request
	if _, err := ParseRequest(benchRequest, &r); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	ip, proto := []byte("203.0.113.9"), []byte("https")
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRequest)))
	for b.Loop() {
		dst = AppendProxyRequest(dst[:0], &r, r.Target, ip, proto, []byte("backend:80"), false)
	}
}

func BenchmarkAppendProxyResponse(b *testing.B) {
	var r Response
	if _, err := ParseResponse(benchResponse, &r); err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchResponse)))
	for b.Loop() {
		dst = AppendProxyResponse(dst[:0], &r, 1, true, false, false)
	}
}

// BenchmarkChunkedForward is BenchmarkChunkedSkip through Forward: the data path must cost the same.
func BenchmarkChunkedForward(b *testing.B) {
	var d ChunkedReader
	kept := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchChunked)))
	for b.Loop() {
		d.Reset()
		var done bool
		var err error
		if _, _, _, kept, done, err = d.Forward(benchChunked, kept[:0]); !done || err != nil {
			b.Fatal(done, err)
		}
	}
}
