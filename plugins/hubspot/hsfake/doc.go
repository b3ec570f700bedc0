// Package hsfake is an in-memory fake of the HubSpot CRM v3 API on a real
// loopback HTTP server, for tests of the HubSpot plugin, the hub's
// end-to-end tests and the sandbox.
//
// It speaks HubSpot's wire format where a client depends on it (see
// shared/reference/hubspot-crm.md): numeric-string ids, string property
// values, ISO timestamps with milliseconds, error bodies with
// status/message/correlationId/category, the 409 "Contact already exists.
// Existing ID: N" body, 401 on a missing or wrong Bearer token, 429 bodies
// with policyName and the X-HubSpot-RateLimit-* headers on every response.
//
// Routes:
//
//	POST   /crm/v3/objects/{type}              create (with associations)
//	GET    /crm/v3/objects/{type}/{id}         read (?properties=, ?idProperty=email)
//	PATCH  /crm/v3/objects/{type}/{id}         update (?idProperty=email)
//	DELETE /crm/v3/objects/{type}/{id}         archive
//	POST   /crm/v3/objects/{type}/search       filterGroups search
//	GET    /crm/v3/properties/{type}[/{name}]  property definitions
//	POST   /crm/v3/properties/{type}           create a property
//	GET    /crm/v3/owners/[?email=]            owners, paged
//	GET    /crm/v3/owners/{id}
//	GET    /crm/v3/pipelines/deals             deal pipelines and stages
//
// {type} is contacts, deals, notes, tasks or companies. Everything is safe
// for concurrent use; accessors return copies.
package hsfake
