"""Forms for templates, their scripts/files/packages/services, package buckets and imports."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Optional, Regexp, ValidationError

from app.container_templates import services
from app.container_templates.manifest import FILE_NAME_RE, SCHEMES
from app.forms import MAX_FILTER_VALUES, QueryForm, TooManyValues, column_length, fits, pve_range, strip, truncate
from app.input_guard import container_path
from app import models
from app.models import FILE_POLICIES, PACKAGE_MANAGERS, ContainerTemplate


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _sentence(error: ValueError) -> str:
    text = str(error)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _choices(*items) -> list[SelectChoice]:
    """Select options from values or ``(value, label)`` pairs."""
    return [SelectChoice(*item) if isinstance(item, tuple) else SelectChoice(item, item) for item in items]


AT_LEAST = "Number must be at least %(min)s. The most is %(max)s."


class ActionForm(FlaskForm):
    """A button-only POST (delete, duplicate, move…): nothing but the CSRF token."""


class TemplateForm(FlaskForm):
    """A template's config: what the container gets."""

    name = StringField("Name", validators=[DataRequired(), fits(ContainerTemplate.name)], filters=[_strip])
    description = TextAreaField("Description", validators=[Optional()], filters=[_strip], render_kw={"rows": 2})
    ostemplate = StringField("OS template", validators=[Optional(), fits(ContainerTemplate.ostemplate)],
                             filters=[_strip])
    cores = IntegerField("Cores", default=1, validators=[InputRequired(), pve_range("cores")])
    memory = IntegerField("Memory (MiB)", default=512, validators=[InputRequired(), pve_range("memory", AT_LEAST)])
    swap = IntegerField("Swap (MiB)", default=512, validators=[InputRequired(), pve_range("swap", AT_LEAST)])
    disk = IntegerField("Disk (GiB)", default=8, validators=[InputRequired(), pve_range("disk", AT_LEAST)])
    storage = StringField("Storage", validators=[Optional(), fits(ContainerTemplate.storage)], filters=[_strip])
    bridge = StringField("Bridge", validators=[Optional(), fits(ContainerTemplate.bridge)], filters=[_strip])
    unprivileged = BooleanField("Unprivileged container", default=True)
    nesting = BooleanField("Nesting")
    keyctl = BooleanField("keyctl")
    fuse = BooleanField("FUSE")
    tags = StringField("Tags", validators=[Optional(), fits(ContainerTemplate.tags)], filters=[_strip],
                       description=services.TAGS_HELP)

    def __init__(self, *args, ostemplate_choices: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ostemplate_choices = ostemplate_choices or []

    def validate_ostemplate(self, field):
        if self.ostemplate_choices and field.data and field.data not in self.ostemplate_choices:
            raise ValidationError("Choose one of the OS templates found on the cluster.")

    def validate_tags(self, field):
        bad = services.invalid_tags(services.split_tags(field.data))
        if bad:
            raise ValidationError(
                f"Invalid tag “{bad[0]}”: use letters, digits, _ - + . and start with a letter, digit or _."
            )

    def config(self) -> dict:
        """The values for services.create_template/update_template."""
        data = {name: self[name].data for name in services.CONFIG_FIELDS}
        data["description"] = data["description"] or ""
        for key in ("ostemplate", "storage", "bridge"):
            data[key] = data[key] or None
        data["tags"] = services.split_tags(self.tags.data)
        return data


class ScriptForm(FlaskForm):
    """One script in the run order."""

    name = StringField("Name", validators=[DataRequired(), fits(models.TemplateScript.name)], filters=[_strip])
    content = TextAreaField("Script", validators=[DataRequired()], render_kw={"rows": 8, "spellcheck": "false"})
    enabled = BooleanField("Enabled", default=True)


class FileForm(FlaskForm):
    """A file written into the container."""

    name = StringField("File name", validators=[DataRequired(), fits(models.TemplateFile.name),
                                                Regexp(FILE_NAME_RE, message="Use a plain file name (letters, digits, _ . -).")],
                       filters=[_strip])
    target_path = StringField("Target directory", validators=[DataRequired(), fits(models.TemplateFile.target_path)],
                              filters=[_strip])
    policy = SelectField("If the file exists", choices=_choices(
        ("replace", "replace it"), ("default", "keep it (write only if missing)"), ("backup", "back it up, then replace"),
    ), default="replace", validators=[DataRequired()])
    content = TextAreaField("Content", render_kw={"rows": 6, "spellcheck": "false"})

    def validate_target_path(self, field):
        try:
            field.data = container_path(field.data)
        except ValueError as error:
            raise ValidationError(_sentence(error)) from None

    def validate_policy(self, field):
        if field.data not in FILE_POLICIES:
            raise ValidationError("Unknown policy.")


class PackageForm(FlaskForm):
    """One package: manager, name and an optional version."""

    manager = SelectField("Manager", choices=_choices(*PACKAGE_MANAGERS), default="apt")
    name = StringField("Package", validators=[DataRequired(), fits(models.TemplatePackage.name)], filters=[_strip])
    version = StringField("Version", validators=[Optional(), fits(models.TemplatePackage.version)], filters=[_strip])

    def validate_name(self, field):
        try:
            services.parse_package_line(
                f"{self.manager.data}:{field.data}" + (f"=={self.version.data}" if self.version.data else "")
            )
        except ValueError as error:
            raise ValidationError(_sentence(error)) from None


class ServiceForm(FlaskForm):
    """A service the template's containers provide."""

    name = StringField("Service", validators=[DataRequired(), fits(models.TemplateService.name)], filters=[_strip])
    unit = StringField("systemd unit", validators=[Optional(), fits(models.TemplateService.unit)], filters=[_strip])
    port = IntegerField("Port", validators=[Optional(), pve_range("port")])
    scheme = SelectField("Scheme", choices=_choices(*SCHEMES), default="http")
    web_path = StringField("Web path", validators=[Optional(), fits(models.TemplateService.web_path),
                                                   Regexp(r"^/", message="Start the path with /.")], filters=[_strip])


class AttachBucketForm(FlaskForm):
    """Pick a bucket to install with the template."""

    bucket_id = SelectField("Package bucket", coerce=int, validators=[DataRequired()])


class BucketForm(FlaskForm):
    """A package bucket's name and description."""

    name = StringField("Name", validators=[DataRequired(), fits(models.PackageBucket.name)], filters=[_strip])
    description = StringField("Description", validators=[Optional()], filters=[_strip])


class BucketImportForm(FlaskForm):
    """Packages pasted as text, one per line."""

    text = TextAreaField("Packages", validators=[DataRequired()], render_kw={
        "rows": 5, "spellcheck": "false", "placeholder": "curl\npip:requests==2.32.3\nnpm:pm2  # comments are fine",
    })
    manager = SelectField("Default manager", choices=_choices(*PACKAGE_MANAGERS), default="apt")


class ImportForm(FlaskForm):
    """A template file (.json) to import."""

    file = FileField("Template file (.json)", validators=[FileRequired("Choose a .json template file.")])


class GridQuery(QueryForm):
    """``?search=&tags=`` of the template grid."""

    search = StringField(filters=[strip, truncate(200)])
    tags = StringField()

    @property
    def selected_tags(self) -> list[str]:
        """The tags to filter by (``services.split_tags``).

        :raise TooManyValues: (400) for more than MAX_FILTER_VALUES tags.
        """
        tags = services.split_tags(self.tags.data or "")
        if len(tags) > MAX_FILTER_VALUES:
            raise TooManyValues(f"The grid filters by at most {MAX_FILTER_VALUES} tags; {len(tags)} were given.")
        if any(len(tag) > column_length(ContainerTemplate.tags) for tag in tags):
            raise TooManyValues(f"A tag is at most {column_length(ContainerTemplate.tags)} characters long.")
        return tags
