// Package byteview reads a byte slice as a string without copying it.
package byteview

import "unsafe"

// String returns b as a string that shares b's memory. The caller must not
// change b while the string is in use, nor keep the string after b may
// change: use it only to read JSON or text within one call.
func String(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
