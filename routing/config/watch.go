package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// DefaultDebounce is the coalescing window Watch uses.
const DefaultDebounce = 200 * time.Millisecond

// kubeletDataDir is the symlink a Kubernetes ConfigMap/Secret volume swaps atomically on update; the
// visible files are symlinks through it and never change themselves.
const kubeletDataDir = "..data"

// WatchOptions configures a Watcher.
type WatchOptions struct {
	// Debounce is how long after the first relevant event the Watcher waits, collecting further events,
	// before calling onChange once. Zero calls onChange as soon as the Run loop gets to it (events already
	// queued are still coalesced).
	Debounce time.Duration
	// Logger receives watch errors and change notices; nil discards them.
	Logger *zap.Logger
}

// Watcher reports changes to configuration and secret files. It watches directories, not files: a file
// path is watched through its parent directory, filtered to that file's name and "..data", which is what
// changes when the kubelet updates a ConfigMap or Secret volume (it writes a new timestamped directory,
// points a "..data_tmp" symlink at it, renames that over "..data" and deletes the old directory). Watching
// the directory also survives editors that replace a file by rename or remove and create.
type Watcher struct {
	fs       *fsnotify.Watcher
	log      *zap.Logger
	debounce time.Duration
	after    func(time.Duration) <-chan time.Time // replaced by tests

	mu   sync.Mutex
	dirs map[string]dirFilter // cleaned directory → which entries matter

	closeOnce sync.Once
	closeErr  error
}

// dirFilter says which entries of a watched directory matter.
type dirFilter struct {
	all   bool            // the directory itself was given: every entry Load would read
	names map[string]bool // files given by path
}

func (f dirFilter) matches(name string) bool {
	return name == kubeletDataDir || f.names[name] || (f.all && isConfigName(name))
}

// NewWatcher starts watching paths (files or directories, such as the configuration paths plus
// Config.SecretFiles). Changes made after it returns are reported by Run.
func NewWatcher(paths []string, opts WatchOptions) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("config watcher: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	w := &Watcher{fs: fw, log: log, debounce: opts.Debounce, after: after, dirs: map[string]dirFilter{}}
	if err := w.SetPaths(paths); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// after is time.After, except that a zero window fires at once.
func after(d time.Duration) <-chan time.Time {
	if d <= 0 {
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	return time.After(d)
}

// SetPaths replaces the watched paths, e.g. after a reload changed the set of secret files. It may be
// called while Run is running, including from onChange. A path that does not exist is treated as a file
// whose parent directory is watched, so its later creation is seen.
func (w *Watcher) SetPaths(paths []string) error {
	want := map[string]dirFilter{}
	for _, p := range paths {
		p = filepath.Clean(p)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			f := want[p]
			f.all = true
			want[p] = f
			continue
		}
		dir, name := filepath.Split(p)
		dir = filepath.Clean(dir)
		f := want[dir]
		if f.names == nil {
			f.names = map[string]bool{}
		}
		f.names[name] = true
		want[dir] = f
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	for dir, f := range want {
		if _, ok := w.dirs[dir]; !ok {
			if err := w.fs.Add(dir); err != nil {
				errs = append(errs, fmt.Errorf("config watcher: watching %s: %w", dir, err))
				continue
			}
		}
		w.dirs[dir] = f
	}
	for dir := range w.dirs {
		if _, ok := want[dir]; !ok {
			// The directory may be gone already, which removes its watch.
			if err := w.fs.Remove(dir); err != nil && !errors.Is(err, fsnotify.ErrNonExistentWatch) {
				w.log.Debug("config watcher: removing watch", zap.String("dir", dir), zap.Error(err))
			}
			delete(w.dirs, dir)
		}
	}
	return errors.Join(errs...)
}

// relevant reports whether ev may change what Load or SecretRef.Resolve read.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.dirs[name]; ok {
		// The watched directory itself was removed or renamed; its watch is gone.
		w.log.Warn("config watcher: watched directory changed", zap.String("dir", name), zap.Stringer("op", ev.Op))
		return true
	}
	f, ok := w.dirs[filepath.Dir(name)]
	return ok && f.matches(filepath.Base(name))
}

// Run calls onChange, serially, after relevant changes until ctx is done, then closes the Watcher and
// returns nil. Changes within the debounce window are coalesced into one call. fsnotify errors are logged;
// a lost-events overflow is treated as a change. Run returns an error only if the watcher breaks.
func (w *Watcher) Run(ctx context.Context, onChange func()) error {
	defer w.Close()
	var fire <-chan time.Time // non-nil while a change is pending
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.fs.Events:
			if !ok {
				return errors.New("config watcher: closed")
			}
			if !w.relevant(ev) {
				continue
			}
			w.log.Debug("config watcher: change", zap.String("name", ev.Name), zap.Stringer("op", ev.Op))
			if fire == nil {
				fire = w.after(w.debounce)
			}
		case err, ok := <-w.fs.Errors:
			if !ok {
				return errors.New("config watcher: closed")
			}
			w.log.Warn("config watcher: error", zap.Error(err))
			if errors.Is(err, fsnotify.ErrEventOverflow) && fire == nil {
				fire = w.after(w.debounce)
			}
		case <-fire:
			fire = nil
			onChange()
		}
	}
}

// Close stops watching. It is safe to call more than once.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() { w.closeErr = w.fs.Close() })
	return w.closeErr
}
