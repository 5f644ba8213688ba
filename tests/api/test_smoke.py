from partners.roles import Role
from tests.factories import Tenant
from tests.support import GQL


async def test_me(gql: GQL, tenant: Tenant) -> None:
    data = await gql.data("{ me { role user { email } } }", as_user=tenant.user(Role.VENDOR_ADMIN))
    assert data["me"]["role"] == "VENDOR_ADMIN"
