// Package layers holds only a test: it checks the layer rule of
// docs/architecture.md ("Packages and layers") with go list.
package layers
