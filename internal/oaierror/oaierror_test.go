package oaierror

import (
	"encoding/json"
	"testing"
)

func TestBody(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{
			name: "nullable fields",
			err:  &Error{Status: 401, Type: TypeInvalidRequest, Message: "no"},
			want: `{"error":{"message":"no","type":"invalid_request_error","param":null,"code":null}}`,
		},
		{
			name: "escaping",
			err:  ModelNotFound("a\"b\n<"),
			want: `{"error":{"message":"The model \"a\\\"b\\n<\" does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(tt.err.Body())
			if got != tt.want {
				t.Fatalf("body\n got %s\nwant %s", got, tt.want)
			}
			var v struct {
				Error struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Param   *string `json:"param"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(got), &v); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			if v.Error.Message != tt.err.Message || v.Error.Type != tt.err.Type {
				t.Fatalf("round trip mismatch: %+v", v)
			}
		})
	}
}

func FuzzBody(f *testing.F) {
	f.Add("msg", "code", "param")
	f.Add("\xff\x00\"\\", "", "")
	f.Fuzz(func(t *testing.T, msg, code, param string) {
		b := (&Error{Status: 400, Type: TypeInvalidRequest, Code: code, Param: param, Message: msg}).Body()
		if !json.Valid(b) {
			t.Fatalf("invalid JSON: %q", b)
		}
	})
}
