package yamldoc

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// maxAliasDepth bounds how many aliases in a row Resolve follows.
const maxAliasDepth = 100

// Budget bounds the work of decoding one document: every node visited, with
// aliases expanded, costs one. YAML aliases could otherwise expand a small
// file into a huge configuration.
type Budget struct {
	left int
}

// NewBudget allows n nodes.
func NewBudget(n int) *Budget { return &Budget{left: n} }

// Spend charges one node. It returns false once the budget is exhausted,
// with the reason the first time only, so that a document is reported too
// large once.
func (b *Budget) Spend() (ok bool, why string) {
	if b.left--; b.left < 0 {
		if b.left == -1 {
			return false, "document too large (too many values after expanding aliases)"
		}
		return false, ""
	}
	return true, ""
}

// Follow returns the node an alias (or chain of aliases) refers to, n itself
// when it is not an alias, or nil when the alias cannot be resolved.
func Follow(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < maxAliasDepth; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	return n
}

// ErrAlias is the message for an alias Follow cannot resolve.
const ErrAlias = "unresolvable YAML alias"

// IsNull reports whether n is an explicit or implicit null.
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// Describe names a node's kind for error messages: "a string", "a list".
func Describe(n *yaml.Node) string {
	return describe(n, false)
}

// DescribeValue is Describe with the value of a string or number:
// `the string "x"`, "the number 5".
func DescribeValue(n *yaml.Node) string {
	return describe(n, true)
}

func describe(n *yaml.Node, value bool) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch t := n.ShortTag(); t {
		case "!!str":
			if value {
				return fmt.Sprintf("the string %q", n.Value)
			}
			return "a string"
		case "!!int", "!!float":
			if value {
				return "the number " + n.Value
			}
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		case "!!timestamp":
			return "a timestamp"
		default:
			return "a value tagged " + t
		}
	}
	return "an unexpected YAML node"
}
