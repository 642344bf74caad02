package fakeprovider

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// fixturesMarker identifies the fixtures directory; go:embed cannot reach a
// parent directory, so the fixtures are read from the module checkout.
const fixturesMarker = "test/testdata/fixtures/README.md"

// defaultFixturesDir finds test/testdata/fixtures by walking up from this
// source file (works without a particular working directory) and then from the
// working directory (works under -trimpath).
func defaultFixturesDir() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for range 64 { // bounded: a path has far fewer components
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(fixturesMarker))); err == nil {
				return filepath.Join(dir, "test", "testdata", "fixtures"), nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("fakeprovider: cannot find test/testdata/fixtures above the package or working directory; set Options.FixturesDir")
}

// fixtureSet reads named files below one directory, remembering the first error
// so that loaders stay linear.
type fixtureSet struct {
	dir string
	err error
}

func (fs *fixtureSet) read(name string) []byte {
	if fs.err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(fs.dir, filepath.FromSlash(name)))
	if err != nil {
		fs.err = fmt.Errorf("fakeprovider: read fixture: %w", err)
	}
	return b
}

// headers parses a headers_*.txt fixture: '#' lines are comments, every other
// non-empty line is "name: value".
func (fs *fixtureSet) headers(name string) http.Header {
	b := fs.read(name)
	if fs.err != nil {
		return nil
	}
	h := http.Header{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			fs.err = fmt.Errorf("fakeprovider: fixture %s: malformed header line %q", name, line)
			return nil
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h
}

// splitEvents cuts an SSE body after every blank line ("\n\n", the only
// separator the fixtures use), so that each event is written and flushed on its
// own. Bytes after the last separator form a final piece.
func splitEvents(body []byte) [][]byte {
	var events [][]byte
	for len(body) > 0 {
		i := bytes.Index(body, []byte("\n\n"))
		if i < 0 {
			events = append(events, body)
			break
		}
		events = append(events, body[:i+2])
		body = body[i+2:]
	}
	return events
}

// eventData returns the payload of a single-line "data: ..." event.
func eventData(event []byte) ([]byte, bool) {
	line := bytes.TrimSuffix(event, []byte("\n\n"))
	payload, ok := bytes.CutPrefix(line, []byte("data: "))
	if !ok || bytes.IndexByte(payload, '\n') >= 0 {
		return nil, false
	}
	return payload, true
}

// stripUsage turns a Chat Completions stream recorded with
// stream_options.include_usage into what the provider sends without it: the
// usage-only chunk ("choices":[] plus a usage object) disappears and the
// "usage":null key leaves every other chunk. Other bytes are untouched.
func stripUsage(events [][]byte) ([][]byte, error) {
	out := make([][]byte, 0, len(events))
	for _, ev := range events {
		payload, ok := eventData(ev)
		if !ok || !gjson.ValidBytes(payload) {
			out = append(out, ev) // [DONE] and anything that is not a JSON chunk
			continue
		}
		usage := gjson.GetBytes(payload, "usage")
		if !usage.Exists() {
			out = append(out, ev)
			continue
		}
		if usage.IsObject() && len(gjson.GetBytes(payload, "choices").Array()) == 0 {
			continue
		}
		stripped, err := sjson.DeleteBytes(payload, "usage")
		if err != nil {
			return nil, fmt.Errorf("fakeprovider: strip usage: %w", err)
		}
		out = append(out, append(append([]byte("data: "), stripped...), "\n\n"...))
	}
	return out, nil
}

// base64Embeddings rewrites every data[i].embedding float array of an
// embeddings response as base64 of little-endian float32 values, which is what
// the API returns for encoding_format "base64".
func base64Embeddings(body []byte) ([]byte, error) {
	data := gjson.GetBytes(body, "data").Array()
	for i, item := range data {
		values := item.Get("embedding").Array()
		buf := make([]byte, 4*len(values))
		for j, v := range values {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(float32(v.Float())))
		}
		var err error
		body, err = sjson.SetBytes(body, "data."+strconv.Itoa(i)+".embedding", base64.StdEncoding.EncodeToString(buf))
		if err != nil {
			return nil, fmt.Errorf("fakeprovider: base64 embedding %d: %w", i, err)
		}
	}
	return body, nil
}
