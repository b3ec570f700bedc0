package admin

import (
	"strings"

	"github.com/gofiber/fiber/v2"
)

// route is one endpoint: who may call it and what it is called in the
// audit log.
type route struct {
	method  string
	path    string // below Prefix, fiber syntax
	action  string // audit action and OpenAPI operationId
	summary string // for "the viewer role may not ..."
	roles   []Role // nil: no key needed
	params  []string
	handler fiber.Handler
}

// Role sets. Agent keys reach conversations only through routes that
// check the assignee (agentScoped handlers answer 404 for the others').
var (
	allRoles   = []Role{RoleAdmin, RoleSupervisor, RoleAgent, RoleViewer}
	readRoles  = []Role{RoleAdmin, RoleSupervisor, RoleViewer}
	convRead   = []Role{RoleAdmin, RoleSupervisor, RoleViewer, RoleAgent}
	convAct    = []Role{RoleAdmin, RoleSupervisor, RoleAgent}
	superRoles = []Role{RoleAdmin, RoleSupervisor}
	adminRoles = []Role{RoleAdmin}
)

func (api *API) table() []route {
	r := func(method, path, action, summary string, roles []Role, h fiber.Handler) route {
		rt := route{method: method, path: path, action: action, summary: summary, roles: roles, handler: h}
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				rt.params = append(rt.params, strings.TrimSuffix(seg[1:], "?"))
			}
		}
		return rt
	}
	const get, post, put, del = fiber.MethodGet, fiber.MethodPost, fiber.MethodPut, fiber.MethodDelete
	return []route{
		r(get, "/openapi.json", "openapi", "read the API description", nil, api.openapi),

		r(get, "/me", "me", "see who it is", allRoles, api.me),
		r(get, "/health", "health", "check health", allRoles, api.health),
		r(get, "/version", "version", "read the version", allRoles, api.version),
		r(get, "/metrics", "metrics", "read metrics", readRoles, api.metricsHandler()),

		r(get, "/keys", "keys.list", "list API keys", adminRoles, api.listKeys),
		r(post, "/keys", "keys.create", "create API keys", adminRoles, api.createKey),
		r(get, "/keys/:id", "keys.get", "read API keys", adminRoles, api.getKey),
		r(del, "/keys/:id", "keys.revoke", "revoke API keys", adminRoles, api.revokeKey),

		r(get, "/plugins", "plugins.list", "list plugins", readRoles, api.listPlugins),
		r(get, "/plugins/:name", "plugins.get", "read plugins", readRoles, api.getPlugin),
		r(post, "/plugins/:name/restart", "plugins.restart", "restart plugins", adminRoles, api.restartPlugin),

		r(get, "/rules", "rules.get", "read the rules", readRoles, api.getRules),
		r(post, "/rules/validate", "rules.validate", "validate rules", superRoles, api.validateRules),
		r(post, "/rules/reload", "rules.reload", "reload the rules", adminRoles, api.reloadRules),
		r(post, "/rules/dry-run", "rules.dry_run", "dry-run rules", superRoles, api.dryRun),
		r(post, "/rules/what-if", "rules.what_if", "run a what-if", superRoles, api.whatIf),

		r(get, "/teams", "teams.list", "list teams", readRoles, api.listTeams),
		r(get, "/teams/:name", "teams.get", "read teams", readRoles, api.getTeam),
		r(get, "/teams/:name/queue", "teams.queue", "read team queues", readRoles, api.teamQueue),
		r(get, "/agents", "agents.list", "list agents", readRoles, api.listAgents),
		r(get, "/agents/:id", "agents.get", "read agents", convRead, api.getAgent),
		r(put, "/agents/:id/status", "agents.status", "change agent status", convAct, api.setAgentStatus),
		r(put, "/agents/:id/capacity", "agents.capacity", "override agent capacity", superRoles, api.setAgentCapacity),
		r(del, "/agents/:id/capacity", "agents.capacity_reset", "override agent capacity", superRoles, api.resetAgentCapacity),

		r(get, "/conversations", "conversations.list", "list conversations", convRead, api.listConversations),
		r(get, "/conversations/:id", "conversations.get", "read conversations", convRead, api.getConversation),
		r(get, "/conversations/:id/trail", "conversations.trail", "read conversation trails", convRead, api.conversationTrail),
		r(post, "/conversations/:id/takeover", "conversations.takeover", "take over conversations", convAct, api.takeOver),
		r(post, "/conversations/:id/release", "conversations.release", "release conversations", convAct, api.release),
		r(post, "/conversations/:id/reassign", "conversations.reassign", "reassign conversations", superRoles, api.reassign),
		r(post, "/conversations/:id/close", "conversations.close", "close conversations", convAct, api.closeConv),
		r(post, "/conversations/:id/messages", "conversations.send", "send messages", convAct, api.sendMessage),

		r(get, "/leads", "leads.list", "list leads", readRoles, api.listLeads),

		r(get, "/dead-letters", "dead_letters.list", "list dead letters", readRoles, api.listDead),
		r(get, "/dead-letters/:id", "dead_letters.get", "read dead letters", readRoles, api.getDead),
		r(post, "/dead-letters/:id/replay", "dead_letters.replay", "replay dead letters", adminRoles, api.replayDead),
		r(del, "/dead-letters/:id", "dead_letters.discard", "discard dead letters", adminRoles, api.discardDead),

		r(get, "/audit", "audit.list", "read the audit log", readRoles, api.listAudit),
		r(get, "/events", "events.stream", "follow events", allRoles, api.events),
	}
}
