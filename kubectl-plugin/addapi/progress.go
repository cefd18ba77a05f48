package addapi

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gatekiln/gatekiln/apis/v1alpha1"
)

// Phases --wait reports, in the order an API goes through them.
const (
	PhaseResolving = "Resolving"
	PhaseBuilding  = "Building"
	PhaseDeploying = "Deploying"
	PhaseReady     = "Ready"
	PhaseFailed    = "Failed"
)

// Progress is where an API stands, read from its status conditions.
type Progress struct {
	Phase string
	// Reason and Message come from the condition that decided the phase.
	Reason, Message string
	// Job is the Kaniko Job building the image, when one is.
	Job string
	// URL is where the API is served, once Ready.
	URL string
}

// Done reports whether waiting is over, successfully or not.
func (p Progress) Done() bool { return p.Phase == PhaseReady || p.Phase == PhaseFailed }

// Line renders the progress for a person; elapsed is how long the phase has
// lasted so far, shown while building.
func (p Progress) Line(elapsed string) string {
	var b strings.Builder
	b.WriteString(p.Phase)
	switch p.Phase {
	case PhaseReady:
		if p.URL != "" {
			b.WriteString(": " + p.URL)
		}
		return b.String()
	case PhaseBuilding:
		var parts []string
		if p.Job != "" {
			parts = append(parts, "job "+p.Job)
		}
		if elapsed != "" {
			parts = append(parts, elapsed)
		}
		if len(parts) > 0 {
			b.WriteString(" (" + strings.Join(parts, ", ") + ")")
		}
	}
	if p.Reason != "" || p.Message != "" {
		b.WriteString(": ")
		b.WriteString(p.Reason)
		if p.Message != "" {
			if p.Reason != "" {
				b.WriteString(": ")
			}
			b.WriteString(p.Message)
		}
	}
	return b.String()
}

// Observe reads the phase of api for the spec generation the plugin applied.
// A condition recorded for an older generation says nothing about this one.
//
// The operator's conditions are read by their contract: Resolved False is
// final (the definition or the objects it names are wrong, and the operator
// waits for a change); Built or Deployed False with a reason ending in
// "Failed" or "Collision" (BuildFailed, ApplyFailed, TagCollision) is final;
// any other False is still on its way. Observe is pure.
func Observe(api *v1alpha1.API, generation int64) Progress {
	current := func(typ string) *metav1.Condition {
		for i := range api.Status.Conditions {
			c := &api.Status.Conditions[i]
			if c.Type == typ && c.ObservedGeneration >= generation {
				return c
			}
		}
		return nil
	}
	from := func(phase string, c *metav1.Condition) Progress {
		p := Progress{Phase: phase}
		if c != nil {
			p.Reason, p.Message = c.Reason, c.Message
		}
		return p
	}

	resolved := current(v1alpha1.ConditionResolved)
	switch {
	case resolved == nil || resolved.Status == metav1.ConditionUnknown:
		return from(PhaseResolving, resolved)
	case resolved.Status == metav1.ConditionFalse:
		return from(PhaseFailed, resolved)
	}

	built := current(v1alpha1.ConditionBuilt)
	if built == nil || built.Status != metav1.ConditionTrue {
		if built != nil && built.Status == metav1.ConditionFalse && final(built.Reason) {
			return from(PhaseFailed, built)
		}
		p := from(PhaseBuilding, built)
		p.Job = api.Status.BuildJob
		return p
	}

	if deployed := current(v1alpha1.ConditionDeployed); deployed != nil && deployed.Status == metav1.ConditionFalse && final(deployed.Reason) {
		return from(PhaseFailed, deployed)
	}
	ready := current(v1alpha1.ConditionReady)
	if ready != nil && ready.Status == metav1.ConditionTrue {
		p := from(PhaseReady, ready)
		p.URL = api.Status.URL
		return p
	}
	if ready == nil {
		return from(PhaseDeploying, current(v1alpha1.ConditionDeployed))
	}
	return from(PhaseDeploying, ready)
}

func final(reason string) bool {
	return strings.HasSuffix(reason, "Failed") || strings.HasSuffix(reason, "Collision")
}

// FailedError is the error --wait returns when the API failed.
type FailedError struct {
	API      string
	Progress Progress
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("api %s failed: %s: %s", e.API, e.Progress.Reason, e.Progress.Message)
}
