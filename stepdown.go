package leasehold

import (
	"context"

	"github.com/leasehold/leasehold/supervisor"
)

// StepDownOptions shape Runtime.StepDown, which makes a leading election
// resign gracefully; see supervisor.StepDownOptions.
type StepDownOptions = supervisor.StepDownOptions

// Step-down errors; see supervisor.StepDown.
var (
	ErrSteppedDown = supervisor.ErrSteppedDown
	ErrNotLeader   = supervisor.ErrNotLeader
	ErrNoSuccessor = supervisor.ErrNoSuccessor
	ErrNoSuchNode  = supervisor.ErrNoSuchNode
)

// RuntimeOf returns the runtime running the service whose context ctx is,
// or nil outside a tree.
func RuntimeOf(ctx context.Context) *Runtime { return supervisor.RuntimeOf(ctx) }
