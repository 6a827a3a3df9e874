package leasehold

import "github.com/leasehold/leasehold/supervisor"

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
