"""Reusable container recipes: resources, features, scripts, files, packages and services."""
from __future__ import annotations

import posixpath
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.types import UTCDateTime, one_of, utcnow

FILE_POLICIES = ("replace", "default", "backup")
PACKAGE_MANAGERS = ("apt", "pip", "npm")
SERVICE_SCHEMES = ("http", "https", "tcp", "udp")

template_buckets = Table(
    "template_buckets",
    db.metadata,
    Column("template_id", ForeignKey("container_templates.id", ondelete="CASCADE"), primary_key=True),
    Column("bucket_id", ForeignKey("package_buckets.id", ondelete="CASCADE"), primary_key=True),
)


class ContainerTemplate(db.Model):
    """A recipe for new containers: resources and features, and the scripts, files, packages and services
    provisioning applies."""

    __tablename__ = "container_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    ostemplate: Mapped[str | None] = mapped_column(String(255))
    cores: Mapped[int] = mapped_column(Integer, default=1)
    memory: Mapped[int] = mapped_column(Integer, default=512)
    swap: Mapped[int] = mapped_column(Integer, default=512)
    disk: Mapped[int] = mapped_column(Integer, default=8)
    storage: Mapped[str | None] = mapped_column(String(100))
    bridge: Mapped[str | None] = mapped_column(String(100))
    unprivileged: Mapped[bool] = mapped_column(Boolean, default=True)
    nesting: Mapped[bool] = mapped_column(Boolean, default=False)
    keyctl: Mapped[bool] = mapped_column(Boolean, default=False)
    fuse: Mapped[bool] = mapped_column(Boolean, default=False)
    tags: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    scripts: Mapped[list[TemplateScript]] = relationship(
        back_populates="template", cascade="all, delete-orphan", order_by="TemplateScript.position"
    )
    files: Mapped[list[TemplateFile]] = relationship(
        back_populates="template", cascade="all, delete-orphan", order_by="TemplateFile.id"
    )
    packages: Mapped[list[TemplatePackage]] = relationship(
        back_populates="template", cascade="all, delete-orphan", order_by="TemplatePackage.id"
    )
    services: Mapped[list[TemplateService]] = relationship(
        back_populates="template", cascade="all, delete-orphan", order_by="TemplateService.id"
    )
    buckets: Mapped[list[PackageBucket]] = relationship(secondary=template_buckets, order_by="PackageBucket.name")

    __table_args__ = (
        CheckConstraint("cores >= 1", name="cores_positive"),
        CheckConstraint("memory >= 16", name="memory_min"),
        CheckConstraint("swap >= 0", name="swap_non_negative"),
        CheckConstraint("disk >= 1", name="disk_min"),
    )

    @property
    def tag_list(self) -> list[str]:
        """Tags as a list (stored ``;``-joined like Proxmox does)."""
        return [tag for tag in self.tags.split(";") if tag]

    def __repr__(self) -> str:
        return f"<ContainerTemplate {self.name}>"


class TemplateScript(db.Model):
    """A shell script run inside a new container, in ``position`` order, when ``enabled``."""

    __tablename__ = "template_scripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("container_templates.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    template: Mapped[ContainerTemplate] = relationship(back_populates="scripts")


class TemplateFile(db.Model):
    """A file written into a new container at ``target_path/name``. One already there is overwritten
    (``replace``), kept (``default``) or copied to ``<name>.bak`` first (``backup``)."""

    __tablename__ = "template_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("container_templates.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    target_path: Mapped[str] = mapped_column(String(1024))
    policy: Mapped[str] = mapped_column(String(16), default="replace")
    content: Mapped[str] = mapped_column(Text, default="")

    template: Mapped[ContainerTemplate] = relationship(back_populates="files")

    __table_args__ = (one_of("policy", FILE_POLICIES, "policy_known"),)

    @property
    def destination(self) -> str:
        """Where the file lands in the container: its name inside the target directory."""
        return posixpath.join(self.target_path, self.name)


class PackageBucket(db.Model):
    """A named set of packages that templates can share."""

    __tablename__ = "package_buckets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    packages: Mapped[list[TemplatePackage]] = relationship(
        back_populates="bucket", cascade="all, delete-orphan", order_by="TemplatePackage.id"
    )


class TemplatePackage(db.Model):
    """A package installed by a template directly, or through a package bucket."""

    __tablename__ = "template_packages"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("container_templates.id", ondelete="CASCADE"), index=True
    )
    bucket_id: Mapped[int | None] = mapped_column(ForeignKey("package_buckets.id", ondelete="CASCADE"), index=True)
    manager: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(100))

    template: Mapped[ContainerTemplate | None] = relationship(back_populates="packages")
    bucket: Mapped[PackageBucket | None] = relationship(back_populates="packages")

    __table_args__ = (
        one_of("manager", PACKAGE_MANAGERS, "manager_known"),
        CheckConstraint(
            "(template_id IS NULL) <> (bucket_id IS NULL)", name="one_owner"
        ),
    )


class TemplateService(db.Model):
    """A service a template's containers provide, with where its web UI lives."""

    __tablename__ = "template_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("container_templates.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str | None] = mapped_column(String(255))
    port: Mapped[int | None] = mapped_column(Integer)
    scheme: Mapped[str] = mapped_column(String(8), default="http")
    web_path: Mapped[str | None] = mapped_column(String(255))

    template: Mapped[ContainerTemplate] = relationship(back_populates="services")

    __table_args__ = (one_of("scheme", SERVICE_SCHEMES, "scheme_known"),)
