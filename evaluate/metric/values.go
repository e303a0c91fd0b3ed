package metric

import (
	"encoding/json"
	"math"
)

// Values maps T5's metric keys ("accuracy", "f1", "matthews_corrcoef", "em", ...) to values.
// An undefined value (a correlation of a constant prediction) is NaN in Go and null in
// JSON, which has no NaN: results files, the server's answers and reports all read and
// write metrics through this type.
type Values map[string]float64

// MarshalJSON writes NaN and ±Inf as null.
func (m Values) MarshalJSON() ([]byte, error) {
	out := make(map[string]*float64, len(m))
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			out[k] = nil
			continue
		}
		out[k] = &v
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads null as NaN.
func (m *Values) UnmarshalJSON(data []byte) error {
	var in map[string]*float64
	if err := json.Unmarshal(data, &in); err != nil {
		return err
	}
	*m = make(Values, len(in))
	for k, v := range in {
		if v == nil {
			(*m)[k] = math.NaN()
		} else {
			(*m)[k] = *v
		}
	}
	return nil
}
