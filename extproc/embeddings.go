package extproc

import "github.com/tollgate-ai/tollgate/routing"

// embeddingsProcessor serves POST /v1/embeddings.
func embeddingsProcessor(*Snapshot) *processor {
	return &processor{
		endpoint: routing.EndpointEmbeddings,
		method:   "POST",
		path:     "/v1/embeddings",
		azureOp:  "/embeddings",
		headers:  []headerStep{stepRequireBody, stepTraceHeaders},
		body: []bodyStep{
			stepParseJSON,
			stepSelectApp,
			stepCheckAgent,
			stepCheckMetadata,
			stepResolveModel,
			stepCheckOffered,
			stepConfine,
			stepGuardInput(chatPieces, embeddingPieces),
			stepCaptureInput,
			stepAdmitText,
			stepStripGatewayFields,
		},
		deliver: [targetKinds][]bodyStep{
			kindDirect:     {stepRewriteModel, stepSpliceBody, stepRouteUpstream, stepMintCredential},
			kindTranslated: {stepTranslateBody, stepRouteUpstream, stepTranslatorHeaders, stepMintCredential},
			kindChain:      {stepCheckChainMembers, stepRouteChain},
			kindMock:       {stepRewriteModel, stepSpliceBody, stepMockEmbeddings},
		},
		attempt: [targetKinds][]attemptStep{
			kindDirect: {attemptRewriteModel, attemptSpliceBody, attemptPathStep, attemptCredential,
				attemptMintCredential, attemptFinishStep},
			kindTranslated: {attemptTranslateBody, attemptPathStep, attemptCredential, attemptTranslatorHeaders,
				attemptMintCredential, attemptFinishStep},
		},
	}
}
