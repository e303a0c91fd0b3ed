package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

func TestStatusErrorBodies(t *testing.T) {
	for _, tc := range []struct {
		body           string
		code, msg, typ string
	}{
		{`{"error":"serve: no such model","code":"not_found"}`, "not_found", "serve: no such model", ""},
		{`{"error":{"message":"bad n","type":"invalid_request_error","param":null,"code":"invalid_request"}}`, "invalid_request", "bad n", "invalid_request_error"},
		{`{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}`, "rate_limit_error", "slow down", "rate_limit_error"},
		{`upstream broke`, "http_502", "upstream broke", ""},
		{`{"error":{"code":"not_found","message":"zoo: not found"}}`, "not_found", "zoo: not found", ""},
	} {
		e := statusError(http.StatusBadGateway, []byte(tc.body), "")
		if e.Code != tc.code || e.Message != tc.msg || e.Type != tc.typ {
			t.Errorf("%s: %+v", tc.body, e)
		}
	}
}

// FuzzStreams feeds arbitrary bytes to the client's stream readers (server-sent events and
// NDJSON, as Generate, Completions and Pull read them): they must return, with an error or
// not, and never panic.
func FuzzStreams(f *testing.F) {
	for _, s := range []string{
		"event: token\ndata: {\"model\":\"m\",\"done\":false}\n\nevent: done\ndata: {\"model\":\"m\",\"done\":true}\n\n",
		"data: {\"id\":\"x\",\"choices\":[]}\n\ndata: [DONE]\n\n",
		"event: error\ndata: {\"error\":\"timeout\",\"code\":\"timeout\"}\n\n",
		"data: {\"error\":{\"message\":\"m\",\"type\":\"server_error\",\"param\":null,\"code\":\"timeout\"}}\n\n",
		"{\"model\":\"m\",\"done\":false}\n{\"error\":\"x\",\"code\":\"timeout\"}\n",
		"{\"status\":\"pulling\"}\n{\"status\":\"success\"}\n",
		"data:\n\n\n", "", "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		events := readEvents(bytes.NewReader(b), func(_ string, data []byte) (bool, error) {
			var r GenerateResponse
			return json.Unmarshal(data, &r) == nil && r.Done, nil
		})
		lines := readLines(bytes.NewReader(b), http.StatusOK, func(line []byte) (bool, error) {
			var p ProgressResponse
			if err := json.Unmarshal(line, &p); err != nil {
				return false, err
			}
			return p.Status == "success", nil
		})
		for _, err := range []error{events, lines} {
			var se *StatusError
			if errors.As(err, &se) && se.StatusCode != http.StatusOK {
				t.Fatalf("a stream's error with status %d", se.StatusCode)
			}
		}
	})
}
