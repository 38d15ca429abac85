package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/fvmhq/fvm/core/store"
)

// DefaultContext is this machine's own host; it is always there and never stored.
const DefaultContext = "default"

// ContextsFile is the file, in the config dir, that holds the contexts (mode 0600).
const ContextsFile = "contexts.json"

// Context is a named remote host, like a docker context.
type Context struct {
	Name        string `json:"name"`
	Host        string `json:"host"` // ssh://[user@]server[:port]; "" for the default context
	Description string `json:"description,omitempty"`
}

// contextsFile is the stored form.
type contextsFile struct {
	Current  string    `json:"current,omitempty"` // "" or DefaultContext: this machine
	Contexts []Context `json:"contexts"`
}

var contextNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// ValidateContextName checks a context name: letters, digits, '_', '.' and
// '-', starting with a letter or digit, at most 63 characters.
func ValidateContextName(name string) error {
	if !contextNameRE.MatchString(name) {
		return fmt.Errorf("context name %q is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit (at most 63)", name)
	}
	return nil
}

// Contexts is the context store in a config dir. Changes are made under a
// lock and written atomically.
type Contexts struct{ Dir string }

func (s Contexts) path() string { return filepath.Join(s.Dir, ContextsFile) }

func (s Contexts) load() (contextsFile, error) {
	var f contextsFile
	err := store.ReadJSON(s.path(), &f)
	if errors.Is(err, fs.ErrNotExist) {
		return contextsFile{}, nil
	}
	if err != nil {
		return f, fmt.Errorf("contexts file %s: %w (fix or remove it)", s.path(), err)
	}
	return f, nil
}

// update changes the stored contexts under the store's lock.
func (s Contexts) update(change func(f *contextsFile) error) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	l, err := store.Lock(s.path() + ".lock")
	if err != nil {
		return err
	}
	defer l.Unlock()
	f, err := s.load()
	if err != nil {
		return err
	}
	if err := change(&f); err != nil {
		return err
	}
	sort.Slice(f.Contexts, func(i, j int) bool { return f.Contexts[i].Name < f.Contexts[j].Name })
	return store.WriteAtomic(s.path(), 0o600, func(w *os.File) error {
		return writeIndentedJSON(w, f)
	})
}

// List returns the default context first, then the stored ones by name, and
// the name of the current one.
func (s Contexts) List() ([]Context, string, error) {
	f, err := s.load()
	if err != nil {
		return nil, "", err
	}
	cur := f.Current
	if cur == "" {
		cur = DefaultContext
	}
	return append([]Context{{Name: DefaultContext, Description: "this machine's fvm host"}}, f.Contexts...), cur, nil
}

// Get returns the named context.
func (s Contexts) Get(name string) (Context, error) {
	list, _, err := s.List()
	if err != nil {
		return Context{}, err
	}
	for _, c := range list {
		if c.Name == name {
			return c, nil
		}
	}
	return Context{}, fmt.Errorf("context %q does not exist: `fvm context ls` lists them, `fvm context create %s ssh://SERVER` makes it", name, name)
}

// Current is the name of the context `fvm context use` picked.
func (s Contexts) Current() (string, error) {
	_, cur, err := s.List()
	return cur, err
}

// Create stores a new context.
func (s Contexts) Create(c Context) error {
	if err := ValidateContextName(c.Name); err != nil {
		return err
	}
	if c.Name == DefaultContext {
		return fmt.Errorf("context %q is this machine's and always exists: pick another name", DefaultContext)
	}
	h, err := ParseHost(c.Host)
	if err != nil {
		return err
	}
	c.Host = h.String()
	return s.update(func(f *contextsFile) error {
		for _, have := range f.Contexts {
			if have.Name == c.Name {
				return fmt.Errorf("context %q already exists (%s): remove it first with `fvm context rm %s`", c.Name, have.Host, c.Name)
			}
		}
		f.Contexts = append(f.Contexts, c)
		return nil
	})
}

// Remove deletes a context; the current one only with force (the default
// context becomes current).
func (s Contexts) Remove(name string, force bool) error {
	if name == DefaultContext {
		return fmt.Errorf("context %q is this machine's: it cannot be removed", DefaultContext)
	}
	return s.update(func(f *contextsFile) error {
		for i, c := range f.Contexts {
			if c.Name != name {
				continue
			}
			if f.Current == name {
				if !force {
					return fmt.Errorf("context %q is in use: `fvm context use default` first, or remove it with -f", name)
				}
				f.Current = ""
			}
			f.Contexts = append(f.Contexts[:i], f.Contexts[i+1:]...)
			return nil
		}
		return fmt.Errorf("context %q does not exist: `fvm context ls` lists them", name)
	})
}

// Use makes a context the current one.
func (s Contexts) Use(name string) error {
	return s.update(func(f *contextsFile) error {
		if name == DefaultContext {
			f.Current = ""
			return nil
		}
		for _, c := range f.Contexts {
			if c.Name == name {
				f.Current = name
				return nil
			}
		}
		return fmt.Errorf("context %q does not exist: `fvm context ls` lists them, `fvm context create %s ssh://SERVER` makes it", name, name)
	})
}

// Selection is the host a command talks to.
type Selection struct {
	Context string // the context's name; "" when given by --host or FVM_HOST
	Host    *Host  // nil: this machine's host
	// From says where the choice came from, for messages: --host, FVM_HOST,
	// --context, FVM_CONTEXT, `fvm context use`, or "" (the default).
	From string
}

// Remote reports whether the host is on another machine.
func (s Selection) Remote() bool { return s.Host != nil }

// Label names the host for people: "this machine", or the context and address.
func (s Selection) Label() string {
	switch {
	case s.Host == nil:
		return "this machine"
	case s.Context != "":
		return fmt.Sprintf("%s (context %s)", s.Host, s.Context)
	}
	return s.Host.String()
}

// Select picks the host as docker picks its engine: --host, then --context
// (both at once is refused), then FVM_HOST, then FVM_CONTEXT, then the
// context `fvm context use` chose, else this machine.
func Select(flagHost, flagContext string, getenv func(string) string, s Contexts) (Selection, error) {
	if flagHost != "" && flagContext != "" {
		return Selection{}, errors.New("--host and --context both given: give one")
	}
	fromHost := func(addr, from string) (Selection, error) {
		h, err := ParseHost(addr)
		if err != nil {
			return Selection{}, fmt.Errorf("%s: %w", from, err)
		}
		return Selection{Host: &h, From: from}, nil
	}
	fromContext := func(name, from string) (Selection, error) {
		c, err := s.Get(name)
		if err != nil {
			return Selection{}, fmt.Errorf("%s: %w", from, err)
		}
		if c.Host == "" {
			return Selection{Context: c.Name, From: from}, nil
		}
		sel, err := fromHost(c.Host, "context "+c.Name)
		sel.Context, sel.From = c.Name, from
		return sel, err
	}
	switch {
	case flagHost != "":
		return fromHost(flagHost, "--host")
	case flagContext != "":
		return fromContext(flagContext, "--context")
	case getenv("FVM_HOST") != "":
		return fromHost(getenv("FVM_HOST"), "FVM_HOST")
	case getenv("FVM_CONTEXT") != "":
		return fromContext(getenv("FVM_CONTEXT"), "FVM_CONTEXT")
	}
	cur, err := s.Current()
	if err != nil {
		return Selection{}, err
	}
	if cur == DefaultContext {
		return Selection{Context: DefaultContext}, nil
	}
	return fromContext(cur, "`fvm context use`")
}
