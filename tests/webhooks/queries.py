"""The GraphQL documents the webhook tests send."""

ENDPOINT_FIELDS = """id url description eventTypes status disabledReason disabledAt
  failingSince previousSecretExpiresAt"""

CREATE = f"""mutation($input: WebhookEndpointCreateInput!) {{
  webhookEndpointCreate(input: $input) {{
  endpoint {{ {ENDPOINT_FIELDS} }} secret userErrors {{ field code message }} }} }}"""
UPDATE = f"""mutation($input: WebhookEndpointUpdateInput!) {{
  webhookEndpointUpdate(input: $input) {{
  endpoint {{ {ENDPOINT_FIELDS} }} userErrors {{ field code message }} }} }}"""
DISABLE = f"""mutation($id: ID!) {{ webhookEndpointDisable(input: {{id: $id}}) {{
  endpoint {{ {ENDPOINT_FIELDS} }} userErrors {{ field code message }} }} }}"""
ENABLE = f"""mutation($id: ID!) {{ webhookEndpointEnable(input: {{id: $id}}) {{
  endpoint {{ {ENDPOINT_FIELDS} }} userErrors {{ field code message }} }} }}"""
DELETE = """mutation($id: ID!) { webhookEndpointDelete(input: {id: $id}) {
  deletedId userErrors { field code message } } }"""
ROTATE = f"""mutation($id: ID!, $overlap: Int! = 86400) {{
  webhookEndpointSecretRotate(input: {{id: $id, overlapSeconds: $overlap}}) {{
  endpoint {{ {ENDPOINT_FIELDS} }} secret userErrors {{ field code message }} }} }}"""
REPLAY = """mutation($input: WebhookReplayInput!) { webhookReplay(input: $input) {
  deliveries { id messageId sequence eventType status } userErrors { field code message } } }"""
ENDPOINTS = f"""{{ webhookEndpoints {{ totalCount edges {{ node {{ {ENDPOINT_FIELDS} }} }} }} }}"""
EVENT_TYPES = "{ webhookEventTypes { name description } }"
DELIVERIES = """query($endpoint: ID, $event: String, $status: WebhookDeliveryStatus) {
  webhookDeliveries(endpointId: $endpoint, eventId: $event, status: $status) {
  totalCount edges { node {
    id endpointId eventId messageId sequence eventType status attemptCount nextAttemptAt
    deliveredAt body
    attempts { number url requestHeaders responseStatus responseBody latencyMs succeeded
               errorClass error }
  } } } }"""
