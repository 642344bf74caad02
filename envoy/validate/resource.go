package validate

import "google.golang.org/protobuf/proto"

// Resource checks one xDS resource (a Cluster, a RouteConfiguration, ...) as Bootstrap checks a
// bootstrap: the protoc-gen-validate rules on it and on the content of every nested Any, and the
// start-up checks of semantic.go, except cluster references, which one resource alone cannot
// resolve. It returns nil if Envoy's protos accept m.
func Resource(m proto.Message) []Problem {
	w := walker{sem: &semantics{}}
	w.validate(m, "")
	w.walk(m.ProtoReflect(), "")
	return append(w.problems, w.sem.finish()...)
}
