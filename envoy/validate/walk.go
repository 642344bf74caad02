package validate

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// check runs the protoc-gen-validate rules on bs and on every message packed in a nested Any, then the
// start-up checks in semantic.go.
func check(bs *bootstrapv3.Bootstrap) []Problem {
	w := walker{sem: newSemantics(bs)}
	w.validate(bs, "")
	w.walk(bs.ProtoReflect(), "")
	return append(w.problems, w.sem.finish()...)
}

type walker struct {
	problems []Problem
	sem      *semantics
}

// validate runs m's generated ValidateAll. It covers embedded messages but stops at Any fields; walk
// calls validate again for each Any's content, so every message is validated exactly once.
func (w *walker) validate(m proto.Message, path string) {
	v, ok := m.(interface{ ValidateAll() error })
	if !ok {
		return
	}
	if err := v.ValidateAll(); err != nil {
		w.problems = append(w.problems, pgvProblems(err, m.ProtoReflect().Descriptor(), path)...)
	}
}

// walk visits every set message field, list element and map value of m in field-number order,
// unpacking Anys along the way.
func (w *walker) walk(m protoreflect.Message, path string) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		w.unpack(a, path)
		return
	}
	w.sem.visit(m.Interface(), path)
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		p := joinPath(path, string(fd.Name()))
		v := m.Get(fd)
		switch {
		case fd.IsList():
			if isMessage(fd) {
				list := v.List()
				for j := 0; j < list.Len(); j++ {
					w.walk(list.Get(j).Message(), p+"["+strconv.Itoa(j)+"]")
				}
			}
		case fd.IsMap():
			if isMessage(fd.MapValue()) {
				mp := v.Map()
				keys := make([]protoreflect.MapKey, 0, mp.Len())
				mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					keys = append(keys, k)
					return true
				})
				sort.Slice(keys, func(a, b int) bool { return keys[a].String() < keys[b].String() })
				for _, k := range keys {
					w.walk(mp.Get(k).Message(), p+"["+strconv.Quote(k.String())+"]")
				}
			}
		case isMessage(fd):
			w.walk(v.Message(), p)
		}
	}
}

// unpack validates and walks the message inside a. Its fields get paths below the Any's own path,
// matching how YAML writes them next to "@type".
func (w *walker) unpack(a *anypb.Any, path string) {
	inner, err := a.UnmarshalNew()
	if err != nil {
		w.problems = append(w.problems, Problem{Path: path, Message: fmt.Sprintf("unpack %s: %v", a.GetTypeUrl(), err)})
		return
	}
	w.validate(inner, path)
	w.walk(inner.ProtoReflect(), path)
}

func isMessage(fd protoreflect.FieldDescriptor) bool {
	k := fd.Kind()
	return k == protoreflect.MessageKind || k == protoreflect.GroupKind
}

// pgvFieldError is implemented by every protoc-gen-validate <Msg>ValidationError.
type pgvFieldError interface {
	Field() string
	Reason() string
	Cause() error
}

// pgvMultiError is implemented by every protoc-gen-validate <Msg>MultiError.
type pgvMultiError interface {
	AllErrors() []error
}

// pgvProblems flattens a ValidateAll error tree into Problems. PGV names fields by their Go names
// ("StaticResources", "Listeners[0]"); md is used to translate them back to proto names.
func pgvProblems(err error, md protoreflect.MessageDescriptor, prefix string) []Problem {
	var multi pgvMultiError
	if errors.As(err, &multi) {
		var out []Problem
		for _, e := range multi.AllErrors() {
			out = append(out, pgvProblems(e, md, prefix)...)
		}
		return out
	}
	var fe pgvFieldError
	if !errors.As(err, &fe) {
		return []Problem{{Path: prefix, Message: err.Error()}}
	}
	seg, child := protoSegment(md, fe.Field())
	path := joinPath(prefix, seg)
	cause := fe.Cause()
	if cause == nil {
		return []Problem{{Path: path, Message: fe.Reason()}}
	}
	var nestedField pgvFieldError
	var nestedMulti pgvMultiError
	if errors.As(cause, &nestedField) || errors.As(cause, &nestedMulti) {
		return pgvProblems(cause, child, path)
	}
	return []Problem{{Path: path, Message: fe.Reason() + ": " + cause.Error()}}
}

// protoSegment translates a PGV field name such as "Listeners[0]" or "TypedExtensionProtocolOptions[k]"
// into proto form ("listeners[0]", `typed_extension_protocol_options["k"]`) and returns the descriptor of
// the message the field holds, if any.
func protoSegment(md protoreflect.MessageDescriptor, field string) (string, protoreflect.MessageDescriptor) {
	name, suffix := field, ""
	if i := strings.IndexByte(field, '['); i >= 0 {
		name, suffix = field[:i], field[i:]
	}
	if md == nil {
		return field, nil
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if !sameName(string(fd.Name()), name) {
			continue
		}
		if fd.IsMap() {
			if suffix != "" {
				suffix = "[" + strconv.Quote(strings.TrimSuffix(suffix[1:], "]")) + "]"
			}
			return string(fd.Name()) + suffix, fd.MapValue().Message()
		}
		return string(fd.Name()) + suffix, fd.Message()
	}
	oneofs := md.Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		if od := oneofs.Get(i); sameName(string(od.Name()), name) {
			return string(od.Name()) + suffix, nil
		}
	}
	return field, nil
}

// sameName reports whether a proto name ("static_resources") and a Go name ("StaticResources") name the
// same field. Proto names that differ only in underscores cannot coexist in one message in practice.
func sameName(protoName, goName string) bool {
	return strings.EqualFold(strings.ReplaceAll(protoName, "_", ""), goName)
}
