package queries

// DefaultBaseline returns the classifier of the platform defaults kiem ships (see queries/baseline).
func DefaultBaseline() Baseline { return nil }
