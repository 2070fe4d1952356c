// tlogcheck reads a running licvault's log with Go's golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog (Debian's golang-golang-x-mod-dev), nothing of licvault's:
//
//	go run tests/go/tlogcheck.go BASE_URL VERIFIER_KEY AUDITOR_TOKEN
//
// It opens the newest checkpoint with the log's verifier key; reads the tree through hash tiles
// (c2sp.org/tlog-tiles, which tlog's TileHashReader checks against the signed root); proves every
// leaf of the entry bundles into that root with tlog, and checks the vault's own inclusion
// proofs (GET /v1/log/proofs/inclusion) and consistency proofs (GET /v1/log/proofs/consistency,
// from every earlier checkpoint GET /v1/log/checkpoints/{size} gives) against it. Prints
// "OK: N leaves" and exits 0 when all hold.
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var base, token string

func get(path string, auth bool) ([]byte, error) {
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		return nil, err
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %d %s", path, res.StatusCode, body)
	}
	return body, nil
}

// checkpoint opens a signed checkpoint note: origin, size, base64 root.
func checkpoint(text []byte, v note.Verifier) (int64, tlog.Hash, error) {
	n, err := note.Open(text, note.VerifierList(v))
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		return 0, tlog.Hash{}, fmt.Errorf("checkpoint has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return 0, tlog.Hash{}, err
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != 32 {
		return 0, tlog.Hash{}, fmt.Errorf("bad root %q", lines[2])
	}
	var h tlog.Hash
	copy(h[:], raw)
	return size, h, nil
}

// tiles serves tlog's tile reads from the vault: c2sp.org/tlog-tiles paths are the sumdb ones
// without the height element.
type tiles struct{}

func (tiles) Height() int { return 8 }

func (tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		path := "/v1/log/tile/" + strings.TrimPrefix(t.Path(), "tile/8/")
		b, err := get(path, false)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}

// vaultProof fetches one of the vault's proofs and decodes its hashes.
func vaultProof(path string) ([]tlog.Hash, error) {
	body, err := get(path, false)
	if err != nil {
		return nil, err
	}
	var p struct{ Hashes []string }
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(p.Hashes))
	for i, s := range p.Hashes {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("bad hash %q", s)
		}
		copy(out[i][:], raw)
	}
	return out, nil
}

func run() error {
	base, token = os.Args[1], os.Args[3]
	v, err := note.NewVerifier(os.Args[2])
	if err != nil {
		return err
	}
	text, err := get("/v1/log/checkpoint", false)
	if err != nil {
		return err
	}
	size, root, err := checkpoint(text, v)
	if err != nil {
		return fmt.Errorf("checkpoint: %v", err)
	}
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tiles{})
	// Every leaf, from the entry bundles (full ones, then the partial last one).
	var n int64
	for n < size {
		w := size - n
		if w > 256 {
			w = 256
		}
		t := tlog.Tile{H: 8, L: -1, N: n / 256, W: int(w)}
		path := "/v1/log/tile/entries/" + strings.TrimPrefix(t.Path(), "tile/8/data/")
		bundle, err := get(path, true)
		if err != nil {
			return err
		}
		for len(bundle) > 0 {
			if len(bundle) < 2 {
				return fmt.Errorf("entry bundle %s: truncated", path)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			if len(bundle) < 2+l {
				return fmt.Errorf("entry bundle %s: truncated entry", path)
			}
			leaf := tlog.RecordHash(bundle[2 : 2+l])
			bundle = bundle[2+l:]
			proof, err := tlog.ProveRecord(size, n, hr)
			if err != nil {
				return fmt.Errorf("leaf %d: tlog cannot prove it from the tiles: %v", n, err)
			}
			if err := tlog.CheckRecord(proof, size, root, n, leaf); err != nil {
				return fmt.Errorf("leaf %d: %v", n, err)
			}
			// The vault's own proof of the same leaf.
			hs, err := vaultProof(fmt.Sprintf("/v1/log/proofs/inclusion?index=%d&size=%d", n, size))
			if err != nil {
				return err
			}
			if err := tlog.CheckRecord(tlog.RecordProof(hs), size, root, n, leaf); err != nil {
				return fmt.Errorf("leaf %d: the vault's inclusion proof: %v", n, err)
			}
			n++
		}
		if n%256 != 0 && n < size {
			return fmt.Errorf("entry bundle %s is short", path)
		}
	}
	// Consistency from earlier checkpoints to this one.
	checked := 0
	for from := int64(1); from < size; from++ {
		text, err := get(fmt.Sprintf("/v1/log/checkpoints/%d", from), false)
		if err != nil {
			continue // sizes between batches have no checkpoint
		}
		fromSize, fromRoot, err := checkpoint(text, v)
		if err != nil || fromSize != from {
			return fmt.Errorf("checkpoint at %d: %v", from, err)
		}
		hs, err := vaultProof(fmt.Sprintf("/v1/log/proofs/consistency?from=%d&to=%d", from, size))
		if err != nil {
			return err
		}
		if err := tlog.CheckTree(tlog.TreeProof(hs), size, root, from, fromRoot); err != nil {
			return fmt.Errorf("consistency %d → %d: %v", from, size, err)
		}
		ours, err := tlog.ProveTree(size, from, hr)
		if err != nil || len(ours) != len(hs) {
			return fmt.Errorf("consistency %d → %d: tlog's own proof differs: %v", from, size, err)
		}
		checked++
	}
	if checked == 0 {
		return fmt.Errorf("no earlier checkpoint to check consistency from")
	}
	fmt.Printf("OK: %d leaves, %d earlier checkpoints consistent\n", size, checked)
	return nil
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: tlogcheck BASE_URL VERIFIER_KEY AUDITOR_TOKEN")
		os.Exit(2)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
}
