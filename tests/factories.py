from __future__ import annotations

import factory

from pksweb.choices import Role
from pksweb.models import User
from tenants.models import Tenant, TenantMembership

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    role = Role.VIEWER
    password = factory.django.Password(PASSWORD)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"tenant-{n}")
    display_name = factory.LazyAttribute(lambda t: t.name.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TenantMembership

    tenant = factory.SubFactory(TenantFactory)
    user = factory.SubFactory(UserFactory, role=Role.TENANT_ADMIN)
    role = "admin"
