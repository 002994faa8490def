package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
)

// asset is one file the page loads. The page gets the list as JSON and checks each by its kind: an image's
// width, a script's marker, a stylesheet's rule, a fetched body's size and FNV-1a hash.
type asset struct {
	Kind  string `json:"kind"` // img, js, css, fetch
	Name  string `json:"name"`
	URL   string `json:"url"`
	Size  int    `json:"size"`
	Width int    `json:"width,omitempty"` // img: naturalWidth
	Hash  uint32 `json:"hash,omitempty"`  // fetch: FNV-1a 32 of the body

	body  []byte
	ctype string
}

const largeAsset = 1 << 20

// assetCounts: 60 assets, the first two of each kind about 1 MiB, the rest a few hundred bytes to 40 KB.
var assetCounts = []struct {
	kind string
	n    int
}{{"img", 20}, {"js", 15}, {"css", 10}, {"fetch", 15}}

// smallSize spreads the small assets between 200 bytes and 40 KB.
func smallSize(i int) int { return 200 + (i*7919)%40000 }

// xorshift is a deterministic byte source: noise for the large images (so PNG cannot shrink them) and
// the fetched bodies.
type xorshift uint64

func (x *xorshift) fill(b []byte) {
	for i := range b {
		*x ^= *x << 13
		*x ^= *x >> 7
		*x ^= *x << 17
		b[i] = byte(*x >> 24)
	}
}

func fnv1a(b []byte) uint32 {
	h := uint32(2166136261)
	for _, c := range b {
		h ^= uint32(c)
		h *= 16777619
	}
	return h
}

// pad returns s followed by a CSS/JS comment that brings it to n bytes.
func padComment(s string, n int) []byte {
	var b bytes.Buffer
	b.WriteString(s)
	if rest := n - b.Len() - len("/*  */\n"); rest > 0 {
		b.WriteString("/* ")
		line := strings.Repeat("switchflow browser check padding ", 3) + "\n"
		for rest > 0 {
			k := min(rest, len(line))
			b.WriteString(line[:k])
			rest -= k
		}
		b.WriteString(" */\n")
	}
	return b.Bytes()
}

func makePNG(w, h int, seed uint64, noise bool) ([]byte, error) {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	if noise {
		x := xorshift(seed)
		x.fill(img.Pix)
	} else {
		c := color.NRGBA{byte(seed * 40), byte(seed * 90), byte(seed * 150), 255}
		for y := 0; y < h; y++ {
			for i := 0; i < w; i++ {
				img.SetNRGBA(i, y, c)
			}
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// buildAssets makes the page's assets, deterministic from run to run.
func buildAssets() ([]*asset, error) {
	var out []*asset
	for _, k := range assetCounts {
		for i := 0; i < k.n; i++ {
			large := i < 2
			size := smallSize(len(out))
			if large {
				size = largeAsset
			}
			a := &asset{Kind: k.kind, Name: fmt.Sprintf("%s-%d", k.kind, i)}
			switch k.kind {
			case "img":
				a.URL, a.ctype = "/a/"+a.Name+".png", "image/png"
				var err error
				if large {
					a.Width = 512 // 512×512 RGBA noise: about 1 MiB of PNG
					a.body, err = makePNG(512, 512, uint64(i+1), true)
				} else {
					a.Width = 8 + i
					a.body, err = makePNG(a.Width, 8, uint64(i+1), false)
				}
				if err != nil {
					return nil, err
				}
			case "js":
				a.URL, a.ctype = "/a/"+a.Name+".js", "text/javascript"
				a.body = padComment(fmt.Sprintf("(window.__bc_js = window.__bc_js || {})[%q] = true;\n", a.Name), size)
			case "css":
				a.URL, a.ctype = "/a/"+a.Name+".css", "text/css"
				a.body = padComment(fmt.Sprintf(".bc-%s { order: %d; }\n", a.Name, i), size)
			case "fetch":
				a.URL, a.ctype = "/a/"+a.Name+".bin", "application/octet-stream"
				a.body = make([]byte, size)
				x := xorshift(uint64(1000 + i))
				x.fill(a.body)
				a.Hash = fnv1a(a.body)
			}
			a.Size = len(a.body)
			out = append(out, a)
		}
	}
	return out, nil
}
