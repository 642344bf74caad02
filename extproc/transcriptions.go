package extproc

import (
	"github.com/tollgate-ai/tollgate/internal/oaierror"
	"github.com/tollgate-ai/tollgate/routing"
)

// transcriptionsProcessor serves POST /v1/audio/transcriptions: a
// multipart upload (multipart.go), so no JSON step runs. Gateway data comes
// in x-tollgate-* headers only, the audio carries no text to guard, and a
// fallback chain cannot take it (attempts rewrite a JSON body).
func transcriptionsProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointTranscriptions,
		method:   "POST",
		path:     "/v1/audio/transcriptions",
		azureOp:  "/audio/transcriptions",
		headers:  []headerStep{stepRequireBody, stepTraceHeaders},
		body: []bodyStep{
			stepParseMultipart,
			stepSelectApp,
			stepCheckAgent,
			stepCheckMetadata,
			stepResolveModel,
			stepNoFallback,
			stepCheckOffered,
			stepConfine,
			stepCaptureInput,
			stepAdmitAudio,
		},
		deliver: [targetKinds][]bodyStep{
			kindDirect:     {stepRewriteFormModel, stepRouteUpstream, stepMintCredential},
			kindTranslated: {stepRewriteFormModel, stepRouteUpstream, stepTranslatorHeaders, stepMintCredential},
			kindChain:      {stepNoFallback}, // refused in body already; listed so every kind has a path
			kindMock:       {stepUnsupportedEndpoint},
		},
	}
}

var (
	stepParseMultipart   = bodyStep{"parse_multipart", parseMultipart}
	stepRewriteFormModel = bodyStep{"rewrite_form_model", rewriteFormModel}
	stepNoFallback       = bodyStep{"no_fallback", noFallback}
)

// noFallback refuses a fallback alias: its attempts rewrite a JSON body,
// and a multipart upload is not one.
func noFallback(x *exchange, _ *upstreamRequest) error {
	if x.target.Chain != nil {
		return oaierror.InvalidRequest("unsupported_endpoint", "model", "Audio transcriptions cannot use the fallback alias "+quote(x.rec.model)+".")
	}
	return nil
}
