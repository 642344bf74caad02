package e2e

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/openai/openai-go/v3"
)

func asAPIError(err error, target **openai.Error) bool { return errors.As(err, target) }

func ioCopy(b *strings.Builder, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(b, resp.Body)
}
