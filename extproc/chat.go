package extproc

import "github.com/tollgate-ai/tollgate/routing"

// chatProcessor serves POST /v1/chat/completions.
func chatProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointChat,
		method:   "POST",
		path:     "/v1/chat/completions",
		azureOp:  "/chat/completions",
		headers:  []headerStep{stepRequireBody, stepTraceHeaders, stepReadCacheControl},
		body: []bodyStep{
			stepParseJSON,
			stepParseStream,
			stepSelectApp,
			stepCheckAgent,
			stepCheckMetadata,
			stepResolveModel,
			stepCheckOffered,
			stepConfine,
			stepGuardInput(chatPieces),
			stepCaptureInput,
			stepAdmitChat,
			stepLookupCache, // after every step that can refuse (docs/cache.md)
			stepStripGatewayFields,
		},
		deliver: [targetKinds][]bodyStep{
			kindDirect:     {stepRewriteModel, stepInjectStreamUsage, stepSpliceBody, stepRouteUpstream, stepMintCredential},
			kindTranslated: {stepTranslateBody, stepRouteUpstream, stepTranslatorHeaders, stepMintCredential},
			kindChain:      {stepCheckChainMembers, stepRouteChain},
			kindMock:       {stepRewriteModel, stepInjectStreamUsage, stepSpliceBody, stepMockChat},
		},
		attempt: [targetKinds][]attemptStep{
			kindDirect: {attemptRewriteModel, attemptInjectStreamUsage, attemptSpliceBody, attemptPathStep, attemptCredential,
				attemptMintCredential, attemptFinishStep},
			kindTranslated: {attemptTranslateBody, attemptPathStep, attemptCredential, attemptTranslatorHeaders,
				attemptMintCredential, attemptFinishStep},
		},
	}
}
