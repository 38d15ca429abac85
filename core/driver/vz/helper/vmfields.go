package helper

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"
)

// Code-Hex/vz v3.7.1 keeps the VZVirtualMachine and its dispatch queue in
// unexported fields of vz.VirtualMachine, and a VZVirtualMachineView needs the
// former. These are the names and kinds read here; scripts/darwincheck's
// TestVZFieldLayout type-checks vz's source from the module cache and fails
// if they change, and vmPointers fails soft ("display unavailable") if a
// build ever sees anything else.
const (
	VZMachineType     = "VirtualMachine" // vz.VirtualMachine
	VZPointerField    = "pointer"        // embedded *objc.Pointer (type pointer = objc.Pointer)
	VZObjcPointerType = "Pointer"        // objc.Pointer, in github.com/Code-Hex/vz/v3/internal/objc
	VZRawPointerField = "_ptr"           // objc.Pointer's unsafe.Pointer to the Objective-C object
	VZQueueField      = "dispatchQueue"  // unsafe.Pointer: the VM's dispatch_queue_t
	VZObjcPackagePath = "github.com/Code-Hex/vz/v3/internal/objc"
	VZPackagePath     = "github.com/Code-Hex/vz/v3"
)

// errNoPointer says the layout is not the one this build knows.
var errNoPointer = errors.New("display unavailable: this build of fvm does not know vz's VirtualMachine layout")

// vmPointers reads the VZVirtualMachine pointer and its dispatch queue from a
// *vz.VirtualMachine, checking every kind on the way; it never panics.
func vmPointers(v any) (machine, queue unsafe.Pointer, err error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("%w: want a non-nil pointer to a struct, got %T", errNoPointer, v)
	}
	s := rv.Elem()
	p := s.FieldByName(VZPointerField)
	if !p.IsValid() || p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
		return nil, nil, fmt.Errorf("%w: field %s", errNoPointer, VZPointerField)
	}
	raw := p.Elem().FieldByName(VZRawPointerField)
	if !raw.IsValid() || raw.Kind() != reflect.UnsafePointer {
		return nil, nil, fmt.Errorf("%w: field %s.%s", errNoPointer, VZPointerField, VZRawPointerField)
	}
	q := s.FieldByName(VZQueueField)
	if !q.IsValid() || q.Kind() != reflect.UnsafePointer {
		return nil, nil, fmt.Errorf("%w: field %s", errNoPointer, VZQueueField)
	}
	// Reading unexported fields' values this way is allowed (only Interface
	// and Set are not); the pointers are owned by vz and outlive the VM's use.
	machine, queue = raw.UnsafePointer(), q.UnsafePointer()
	if machine == nil {
		return nil, nil, fmt.Errorf("%w: the VM has no Objective-C object", errNoPointer)
	}
	return machine, queue, nil
}
