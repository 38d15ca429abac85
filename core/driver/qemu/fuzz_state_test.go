package qemu

import (
	"os"
	"testing"

	"github.com/fvmhq/fvm/core/store"
)

// FuzzFacts: whatever qemu.json, an old runtime.json and a saved state's
// state.json hold, reading them back gives facts or an error, never a panic;
// a state counts only with a well-formed meta beside it, and comparing its
// fingerprint says why it differs in one line.
func FuzzFacts(f *testing.F) {
	f.Add([]byte(`{"qemu":"/usr/bin/qemu-system-x86_64","vmgenid":"x","fingerprint":{"qemu":"7.2"},"virtiofsd":[12,13]}`),
		[]byte(`{"fingerprint":{"qemu":"7.2","firmware":"ab","devices":"cd"},"savedAt":"2026-01-01T00:00:00Z","bytes":5}`))
	f.Add([]byte(`{"qemu": 5}`), []byte(`{"fingerprint":null}`))
	f.Add([]byte(`{"virtiofsd":[-1,0,99999999999]}`), []byte(`{"fingerprint":{"qemu":"\n"}}`))
	f.Fuzz(func(t *testing.T, facts, meta []byte) {
		inst := &store.Instance{Dir: t.TempDir()}
		os.WriteFile(inst.Path(FactsFile), facts, 0o600)
		rt, err := loadFacts(inst)
		if err == nil {
			_ = rt.Fingerprint.Key()
		}
		os.Remove(inst.Path(FactsFile))
		os.WriteFile(inst.Path(store.RuntimeFile), facts, 0o600) // an fvm of before drivers had files
		loadFacts(inst)
		p := pathsOf(inst)
		os.WriteFile(p.stateMeta, meta, 0o600)
		if _, ok := loadState(p); ok {
			t.Fatal("a state meta without its state counts")
		}
		os.WriteFile(p.state, []byte("state"), 0o600)
		if m, ok := loadState(p); ok {
			for _, r := range m.Fingerprint.differs(Fingerprint{QEMU: "8.0", Firmware: "x", Devices: "y"}) {
				if r == '\n' {
					t.Fatalf("why the state differs spans lines")
				}
			}
		}
	})
}
