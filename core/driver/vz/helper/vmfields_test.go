package helper

import (
	"strings"
	"testing"
	"unsafe"
)

// Shaped like vz.VirtualMachine and objc.Pointer in Code-Hex/vz v3.7.1
// (scripts/darwincheck's TestVZFieldLayout checks the real ones).
type objcPointer struct{ _ptr unsafe.Pointer }

type pointer = objcPointer

type fakeVZMachine struct {
	id        string
	supported bool
	*pointer
	dispatchQueue unsafe.Pointer
}

type renamedQueue struct {
	*pointer
	queue unsafe.Pointer
}

type queueOfWrongKind struct {
	*pointer
	dispatchQueue uintptr
}

func TestVMPointers(t *testing.T) {
	var obj, q int
	m := &fakeVZMachine{id: "x", pointer: &objcPointer{_ptr: unsafe.Pointer(&obj)}, dispatchQueue: unsafe.Pointer(&q)}
	_ = []any{m.supported, renamedQueue{}.queue, queueOfWrongKind{}.dispatchQueue} // read only through reflect
	machine, queue, err := vmPointers(m)
	if err != nil || machine != unsafe.Pointer(&obj) || queue != unsafe.Pointer(&q) {
		t.Fatalf("vmPointers = %p %p %v", machine, queue, err)
	}
	for name, v := range map[string]any{
		"nil":              (*fakeVZMachine)(nil),
		"not a pointer":    *m,
		"no pointer field": &struct{ dispatchQueue unsafe.Pointer }{},
		"nil pointer":      &fakeVZMachine{},
		"renamed queue":    &renamedQueue{pointer: m.pointer},
		"queue kind":       &queueOfWrongKind{pointer: m.pointer},
		"nil object":       &fakeVZMachine{pointer: &objcPointer{}},
		"not a struct":     new(int),
	} {
		_, _, err := vmPointers(v)
		if err == nil || !strings.HasPrefix(err.Error(), "display unavailable") {
			t.Errorf("%s: got %v, want a soft 'display unavailable' error", name, err)
		}
	}
}
