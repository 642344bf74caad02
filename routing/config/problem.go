package config

import "github.com/tollgate-ai/tollgate/internal/yamldoc"

// Problem is one thing wrong with the configuration: its file, line and
// field path (such as "providers[1].credential.source") and the message.
type Problem = yamldoc.Problem

// Problems is the error returned by Load and Parse: every problem found, in file order and, within a file,
// by line.
type Problems = yamldoc.Problems
