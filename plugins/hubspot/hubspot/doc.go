// Package hubspot is Switchboard's HubSpot CRM plugin (CRM v3 API with a
// private-app token). plugins/hubspot/main.go serves it; hsfake is the fake
// HubSpot its tests run against.
//
// # Configuration
//
//	crm:
//	  hubspot:
//	    plugin: hubspot
//	    config:
//	      token: ${HUBSPOT_TOKEN}       # private-app token (pat-…); never logged
//	      portal_id: "4242"             # for deep links in Contact.URL / Deal.URL
//	      tier: professional            # free|starter|professional|enterprise|api_add_on (default starter)
//	      timezone: Asia/Ho_Chi_Minh    # the account's zone: the daily limit resets at its midnight
//	      create_properties: true       # create the switchboard_* properties when missing
//	      owners: {an: "64492917"}      # hub agent id → HubSpot owner id
//	      owner_emails: {binh: binh@example.com}  # resolved through the owners API
//	      pipeline: default             # deal pipeline id when a deal names none
//	      pipelines: {retail: "12345"}  # hub pipeline name → pipeline id
//	      stages: {qualified: qualifiedtobuy, hot: presentationscheduled, won: closedwon}
//	      rate_limit: {scope: shared, max_wait: 5s}   # ten_second, daily, search_per_second override the tier
//	      # base_url: http://127.0.0.1:8089  (a fake); app_url: https://app-eu1.hubspot.com (EU portals)
//	      # channel_properties: {zalo: zalo_user_id}  (use an existing property for a channel's ids)
//	      # read_properties: [lifecyclestage]          (returned in Contact.Properties)
//	      # timeout: 10s, lock_ttl: 30s, property_group: contactinformation
//
// The private app needs read and write access to contacts and deals (notes
// and tasks are written alongside them), read access to contact property
// definitions (write with create_properties) and read access to owners
// (crm.objects.owners.read) when owner_emails is used. Check the exact
// scope names in HubSpot's private-app settings; a missing one shows as an
// Unauthorized error with reason missing_scopes.
//
// # Contact properties
//
// HubSpot's own: email, phone, firstname (the whole name: name order
// differs between cultures, so it is not split), hubspot_owner_id.
// Custom properties (created with create_properties: true, otherwise an
// admin creates them; a missing one is an Invalid error naming it):
//
//	switchboard_<channel>_id     user id on a chat channel (switchboard_zalo_id, switchboard_whatsapp_id)
//	switchboard_score            number; only rises unless ResetScore
//	switchboard_tier             follows the score (kept when a lower score is ignored)
//	switchboard_source_channel   first touch
//	switchboard_campaign         first touch
//	switchboard_intent, _need, _budget, _timeline, _action   lead facts, latest known value
//	switchboard_decision_maker   bool, once known
//	switchboard_confidence, switchboard_estimate             numbers
//	switchboard_facts_extra      JSON object of other facts, merged
//	switchboard_tags             ";"-separated, accumulated
//	switchboard_owner_agent      hub agent id of the owner (round-trips agents with no HubSpot user)
//	switchboard_name             the name this plugin last wrote: a name a person edited in HubSpot is kept
//
// Identity properties (email, phone, channel ids) fill blanks and are never
// overwritten: email is HubSpot's dedupe key, and the identity index below
// keeps finding the contact by other values.
//
// # Finding contacts without duplicates
//
// HubSpot has no transactions and its search index trails writes by
// seconds. An upsert therefore (1) takes a lock on each identity, in
// process and across hub replicas through a lease in the host KV; (2) looks
// the identities up in an identity → contact id index kept in the host KV
// (keys are hashed, so no phone or email appears in a key), then through
// POST /crm/v3/objects/contacts/search with one filter group per property;
// (3) creates the contact, or on a 409 "Contact already exists. Existing ID:
// n" updates contact n; (4) updates with a read-modify-write under a lock on
// the contact id, so the score rule holds; (5) writes the index. A contact
// deleted in HubSpot drops out of the index on the next miss.
//
// Notes (hs_note_body, hs_timestamp; associated to the contact with type id
// 202 and to the deal with 214), tasks (hs_task_subject, hs_task_body,
// hs_timestamp = due, hs_task_status, hs_task_priority, hs_task_type,
// hubspot_owner_id; 204 and 216) and deals (dealname, pipeline, dealstage,
// amount, deal_currency_code, hubspot_owner_id; to the contact with 3) are
// written once per idempotency key: the created record is kept in the host
// KV under the key for 30 days and a retry returns it. A deal without an id
// is the contact's deal in its pipeline: a later call moves it.
//
// # Rate limits and errors
//
// Client-side limits follow the tier (reference: 100 or 190 or 250 per
// rolling 10 s, 250k/650k/1M per day, 5 searches per second), counted in
// the host KV so all replicas share one budget (rate_limit.scope: process
// keeps them per process). A call waits up to rate_limit.max_wait for
// budget, then fails RateLimited with the wait as retry-after. HubSpot's
// own 429 becomes RateLimited with Retry-After if sent, else one second for
// search, midnight in the account's zone for the daily limit, or the
// X-HubSpot-RateLimit-Interval-Milliseconds window; it also pauses the
// other replicas. 401 is Unauthorized ("HubSpot rejected the private-app
// token: check HUBSPOT_TOKEN / its scopes"), 403 Unauthorized (scopes),
// 404 NotFound, 400 Invalid, 5xx and network errors Retryable. The plugin
// never retries inline: the hub's queue does.
package hubspot
