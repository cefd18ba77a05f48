package filter

import (
	"maps"
	"testing"
)

func TestRouteParams(t *testing.T) {
	st := NewState(nil)
	st.Route.Params = append(st.ParamBuf(), Param{"id", "42"}, Param{"part", "a/b"})
	r := &st.Route
	for name, want := range map[string]string{"id": "42", "part": "a/b", "missing": ""} {
		if got := r.Param(name); got != want {
			t.Errorf("Param(%q) = %q, want %q", name, got, want)
		}
	}
	if m := r.ParamMap(); !maps.Equal(m, map[string]string{"id": "42", "part": "a/b"}) {
		t.Errorf("ParamMap = %v", m)
	}
	// The next request on the connection starts without them, and the
	// storage it reuses holds nothing of the last one.
	st.Reset(nil)
	if len(st.Route.Params) != 0 || st.Route.ParamMap() != nil || st.Route.Param("id") != "" {
		t.Errorf("after Reset: %v", st.Route.Params)
	}
	if buf := st.ParamBuf()[:2]; buf[0] != (Param{}) || buf[1] != (Param{}) {
		t.Errorf("reused storage still holds %v", buf)
	}
}
