package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// failAfter bounds every wait; it is a failure guard, never a synchronisation mechanism.
const failAfter = 10 * time.Second

// volume reproduces how the kubelet's atomic writer updates a ConfigMap or Secret volume.
type volume struct {
	t     *testing.T
	dir   string
	n     int
	cur   string          // current timestamped directory
	names map[string]bool // visible names
}

func newVolume(t *testing.T, dir string) *volume {
	return &volume{t: t, dir: dir, names: map[string]bool{}}
}

// update writes files as the kubelet does: a new timestamped directory, a "..data_tmp" symlink to it
// renamed over "..data" (the atomic switch), visible "name -> ..data/name" symlinks for new names,
// removal of visible names no longer present, and removal of the old timestamped directory.
func (v *volume) update(files map[string]string) {
	t := v.t
	t.Helper()
	v.n++
	ts := fmt.Sprintf("..2026_05_01_12_00_%02d.%09d", v.n, v.n)
	must(t, os.Mkdir(filepath.Join(v.dir, ts), 0o755))
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(v.dir, ts, name), []byte(content), 0o644))
	}
	must(t, os.Symlink(ts, filepath.Join(v.dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(v.dir, "..data_tmp"), filepath.Join(v.dir, "..data")))
	for name := range files {
		if !v.names[name] {
			must(t, os.Symlink(filepath.Join("..data", name), filepath.Join(v.dir, name)))
		}
	}
	for name := range v.names {
		if _, ok := files[name]; !ok {
			must(t, os.Remove(filepath.Join(v.dir, name)))
		}
	}
	if v.cur != "" {
		must(t, os.RemoveAll(filepath.Join(v.dir, v.cur)))
	}
	v.cur = ts
	v.names = map[string]bool{}
	for name := range files {
		v.names[name] = true
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run starts w.Run and returns a channel that receives after each onChange call (coalesced: it holds at
// most one pending signal). Cleanup stops Run and checks that it returned nil.
func run(t *testing.T, w *Watcher) <-chan struct{} {
	t.Helper()
	changes := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func() {
			select {
			case changes <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		case <-time.After(failAfter):
			t.Error("Run did not return after cancel")
		}
	})
	return changes
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(failAfter):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitUntil waits for change notifications until check succeeds.
func waitUntil(t *testing.T, ch <-chan struct{}, what string, check func() bool) {
	t.Helper()
	deadline := time.After(failAfter)
	for {
		select {
		case <-ch:
			if check() {
				return
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func newWatcher(t *testing.T, paths []string, opts WatchOptions) *Watcher {
	t.Helper()
	w, err := NewWatcher(paths, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

const updated = `version: 1
providers:
  - {name: updated, schema: openai, cluster: c}
`

func providerNames(c *Config) []string {
	var names []string
	for _, p := range c.Providers {
		names = append(names, p.Name)
	}
	return names
}

// The kubelet swaps "..data"; the visible files never change. The first onChange after the swap must
// already see the new content, because the only relevant event is the creation of "..data" by the rename.
func TestWatchKubeletSwap(t *testing.T) {
	for _, watched := range []string{"directory", "file"} {
		t.Run(watched, func(t *testing.T) {
			dir := t.TempDir()
			vol := newVolume(t, dir)
			vol.update(map[string]string{"routing.yaml": good})
			path := dir
			if watched == "file" {
				path = filepath.Join(dir, "routing.yaml")
			}
			if cfg, err := Load(path); err != nil || providerNames(cfg)[0] != "openai" {
				t.Fatalf("initial Load: %v, %v", cfg, err)
			}
			changes := run(t, newWatcher(t, []string{path}, WatchOptions{}))

			vol.update(map[string]string{"routing.yaml": updated})
			wait(t, changes, "onChange after the swap")
			cfg, err := Load(path)
			if err != nil {
				t.Fatalf("Load after swap: %v", err)
			}
			if got := providerNames(cfg); !reflect.DeepEqual(got, []string{"updated"}) {
				t.Errorf("providers after swap = %q, want [updated]", got)
			}
			// The old timestamped directory is gone and only one is left.
			entries, _ := filepath.Glob(filepath.Join(dir, "..2026_*"))
			if len(entries) != 1 {
				t.Errorf("timestamped dirs = %q, want one", entries)
			}
		})
	}
}

// A key added to a ConfigMap appears as a new visible symlink after the swap.
func TestWatchKubeletNewFile(t *testing.T) {
	dir := t.TempDir()
	vol := newVolume(t, dir)
	vol.update(map[string]string{"a.yaml": good})
	changes := run(t, newWatcher(t, []string{dir}, WatchOptions{}))

	vol.update(map[string]string{"a.yaml": good, "b.yaml": "version: 1\nproviders: [{name: second, schema: openai, cluster: c}]\n"})
	waitUntil(t, changes, "the new file to load", func() bool {
		cfg, err := Load(dir)
		return err == nil && reflect.DeepEqual(providerNames(cfg), []string{"openai", "second"})
	})
}

// Editors and tools replace files in several ways; each must lead to an onChange after which Load sees
// the new content.
func TestWatchEditorReplace(t *testing.T) {
	tests := []struct {
		name    string
		replace func(t *testing.T, path string)
	}{
		{"write temp file and rename over", func(t *testing.T, path string) {
			tmp := filepath.Join(filepath.Dir(path), ".routing.yaml.swp")
			must(t, os.WriteFile(tmp, []byte(updated), 0o644))
			must(t, os.Rename(tmp, path))
		}},
		{"remove and create", func(t *testing.T, path string) {
			must(t, os.Remove(path))
			must(t, os.WriteFile(path, []byte(updated), 0o644))
		}},
		{"rename away and create", func(t *testing.T, path string) {
			must(t, os.Rename(path, path+"~"))
			must(t, os.WriteFile(path, []byte(updated), 0o644))
		}},
		{"truncate and write in place", func(t *testing.T, path string) {
			must(t, os.WriteFile(path, []byte(updated), 0o644))
		}},
	}
	for _, tt := range tests {
		for _, watched := range []string{"directory", "file"} {
			t.Run(tt.name+"/"+watched, func(t *testing.T) {
				dir := t.TempDir()
				file := filepath.Join(dir, "routing.yaml")
				must(t, os.WriteFile(file, []byte(good), 0o644))
				path := dir
				if watched == "file" {
					path = file
				}
				changes := run(t, newWatcher(t, []string{path}, WatchOptions{}))
				tt.replace(t, file)
				// Intermediate states (file missing, half written) may be seen by an earlier call.
				waitUntil(t, changes, "the new content", func() bool {
					cfg, err := Load(path)
					return err == nil && reflect.DeepEqual(providerNames(cfg), []string{"updated"})
				})
			})
		}
	}
}

// A rotated Secret (its own kubelet volume) is noticed through Config.SecretFiles, and Resolve then
// returns the new value.
func TestWatchSecretRotation(t *testing.T) {
	root := t.TempDir()
	confDir, secretDir := filepath.Join(root, "config"), filepath.Join(root, "secrets")
	must(t, os.Mkdir(confDir, 0o755))
	must(t, os.Mkdir(secretDir, 0o755))
	secrets := newVolume(t, secretDir)
	secrets.update(map[string]string{"openai-api-key": "sk-old\n"})
	writeFiles(t, confDir, map[string]string{"routing.yaml": provider("    credential:\n      header: authorization\n      prefix: \"Bearer \"\n      source: {file: ../secrets/openai-api-key}\n")})

	cfg, err := Load(confDir)
	if err != nil {
		t.Fatal(err)
	}
	secretFile := filepath.Join(secretDir, "openai-api-key")
	if got := cfg.SecretFiles(); !reflect.DeepEqual(got, []string{secretFile}) {
		t.Fatalf("SecretFiles() = %q, want [%s]", got, secretFile)
	}
	ref := cfg.Providers[0].Credential.Source
	if v, err := ref.Resolve(nil); err != nil || string(v) != "sk-old" {
		t.Fatalf("Resolve before rotation = %q, %v", v, err)
	}

	changes := run(t, newWatcher(t, append([]string{confDir}, cfg.SecretFiles()...), WatchOptions{}))
	secrets.update(map[string]string{"openai-api-key": "sk-new\n"})
	wait(t, changes, "onChange after the Secret rotation")
	if v, err := ref.Resolve(nil); err != nil || string(v) != "sk-new" {
		t.Errorf("Resolve after rotation = %q, %v; want sk-new", v, err)
	}
}

// Within the debounce window any number of events lead to one onChange, and only when the window ends.
// The window's timer is replaced so the test decides when it ends.
func TestWatchDebounce(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "routing.yaml")
	must(t, os.WriteFile(file, []byte(good), 0o644))
	w := newWatcher(t, []string{dir}, WatchOptions{Debounce: time.Minute})
	armed := make(chan time.Duration, 100)
	fire := make(chan time.Time)
	w.after = func(d time.Duration) <-chan time.Time {
		armed <- d
		return fire
	}
	var calls atomic.Int32
	called := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Run(ctx, func() {
			calls.Add(1)
			called <- struct{}{}
		})
	}()

	for i := range 5 {
		must(t, os.WriteFile(file, []byte(fmt.Sprintf("%s# edit %d\n", good, i)), 0o644))
	}
	select {
	case d := <-armed:
		if d != time.Minute {
			t.Errorf("window = %v, want 1m", d)
		}
	case <-time.After(failAfter):
		t.Fatal("timed out waiting for the debounce window to start")
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("onChange called %d times before the window ended", n)
	}
	fire <- time.Now()
	wait(t, called, "onChange after the window")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(failAfter):
		t.Fatal("Run did not return")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("onChange called %d times, want 1", n)
	}
}

// A file that does not exist yet is watched through its directory, so its creation is seen.
func TestWatchFileCreatedLater(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "routing.yaml")
	changes := run(t, newWatcher(t, []string{file}, WatchOptions{}))
	must(t, os.WriteFile(file, []byte(good), 0o644))
	waitUntil(t, changes, "the created file", func() bool { _, err := Load(file); return err == nil })
}

// Removing a watched directory is a change (the next Load fails and the last good config stays).
func TestWatchDirectoryRemoved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "conf")
	writeFiles(t, dir, map[string]string{"a.yaml": good})
	changes := run(t, newWatcher(t, []string{dir}, WatchOptions{}))
	must(t, os.RemoveAll(dir))
	wait(t, changes, "onChange after removing the directory")
}

func TestWatchSetPaths(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	w := newWatcher(t, []string{a, filepath.Join(a, "x.yaml")}, WatchOptions{})
	if got := w.fs.WatchList(); !reflect.DeepEqual(got, []string{a}) {
		t.Errorf("watching %q, want [%s]", got, a)
	}
	must(t, w.SetPaths([]string{filepath.Join(b, "secret")}))
	if got := w.fs.WatchList(); !reflect.DeepEqual(got, []string{b}) {
		t.Errorf("after SetPaths watching %q, want [%s]", got, b)
	}
	changes := run(t, w)
	must(t, os.WriteFile(filepath.Join(b, "secret"), []byte("s"), 0o600))
	wait(t, changes, "onChange for the newly watched file")

	if err := w.SetPaths([]string{filepath.Join(b, "missing", "x")}); err == nil {
		t.Error("SetPaths with a missing directory succeeded")
	}
}

// relevant decides which events can change what Load or Resolve read.
func TestWatchRelevant(t *testing.T) {
	dirPath, fileDir := "/conf", "/secrets"
	w := newWatcher(t, nil, WatchOptions{})
	w.dirs = map[string]dirFilter{
		dirPath: {all: true},
		fileDir: {names: map[string]bool{"openai": true}},
	}
	tests := []struct {
		name string
		op   fsnotify.Op
		want bool
	}{
		{"/conf/..data", fsnotify.Create, true},
		{"/conf/routing.yaml", fsnotify.Write, true},
		{"/conf/routing.yml", fsnotify.Remove, true},
		{"/conf/keys.json", fsnotify.Rename, true},
		{"/conf/routing.yaml", fsnotify.Chmod, false},
		{"/conf/..data_tmp", fsnotify.Create, false},
		{"/conf/..data_tmp", fsnotify.Rename, false},
		{"/conf/..2026_05_01_12_00_01.000000001", fsnotify.Remove, false},
		{"/conf/.routing.yaml.swp", fsnotify.Write, false},
		{"/conf/README.md", fsnotify.Write, false},
		{"/conf", fsnotify.Remove, true},
		{"/secrets/openai", fsnotify.Create, true},
		{"/secrets/..data", fsnotify.Create, true},
		{"/secrets/anthropic", fsnotify.Create, false},
		{"/secrets/x.yaml", fsnotify.Create, false},
		{"/elsewhere/routing.yaml", fsnotify.Write, false},
	}
	for _, tt := range tests {
		if got := w.relevant(fsnotify.Event{Name: tt.name, Op: tt.op}); got != tt.want {
			t.Errorf("relevant(%s %s) = %v, want %v", tt.op, tt.name, got, tt.want)
		}
	}
}

func TestWatcherStartAndCancel(t *testing.T) {
	if _, err := NewWatcher([]string{filepath.Join(t.TempDir(), "no", "such")}, WatchOptions{Debounce: DefaultDebounce}); err == nil {
		t.Error("watching a missing directory succeeded")
	}
	w, err := NewWatcher([]string{t.TempDir()}, WatchOptions{Debounce: DefaultDebounce})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx, func() { t.Error("unexpected onChange") }); err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestWatcherCloseTwice(t *testing.T) {
	w, err := NewWatcher([]string{t.TempDir()}, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	// Run on a closed watcher reports the broken watcher instead of blocking.
	if err := w.Run(context.Background(), func() {}); err == nil {
		t.Error("Run on a closed watcher returned nil")
	}
}
