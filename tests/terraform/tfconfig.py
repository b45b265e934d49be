"""Static reading of the Terraform configuration (python-hcl2) and the checks the tests run on it.

The AWS provider cannot be downloaded here, so nothing can run `terraform validate`; these checks
catch what validate would (undeclared variables, dangling references, bad module calls) plus the
project's own rules. Every check returns a list of problems so that a test can also run it on a
deliberately broken snippet and prove that it fails.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO_ROOT / "terraform"
MODULES_DIR = TERRAFORM_DIR / "modules"
TFVARS_EXAMPLE = REPO_ROOT / "terraform.tfvars.example"
NAMING_FILE = TERRAFORM_DIR / "naming.json"

_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)

# Arguments of a module block that are not input variables.
MODULE_META_ARGUMENTS = frozenset({"source", "version", "count", "for_each", "providers", "depends_on"})
# Root objects in expressions that are not references to declared things.
_BUILTIN_ROOTS = frozenset({"each", "count", "path", "self", "terraform"})

_VAR_REF = re.compile(r"(?<![\w.])var\.([A-Za-z_][\w-]*)")
_LOCAL_REF = re.compile(r"(?<![\w.])local\.([A-Za-z_][\w-]*)")
_MODULE_REF = re.compile(r"(?<![\w.])module\.([A-Za-z_][\w-]*)")
_DATA_REF = re.compile(r"(?<![\w.])data\.([a-z][a-z0-9_]*)\.([A-Za-z_][\w-]*)")
_RESOURCE_REF = re.compile(r"(?<![\w.])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)")
_WILDCARD_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:\*)$")

# Actions that AWS does not let a policy scope to resources: "*" is the only valid resource.
UNSCOPABLE_ACTIONS = frozenset(
    {
        "ecr:GetAuthorizationToken",
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        # Lambda's VPC networking: the service checks the role for these on "*".
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    }
)


def load_hcl(text: str) -> dict[str, Any]:
    return hcl2.loads(text, serialization_options=_OPTIONS)


@dataclass
class Module:
    """The merged top-level blocks of every .tf file in one folder."""

    path: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    blocks: list[Any] = field(default_factory=list)  # everything, for reference scans

    @property
    def name(self) -> str:
        return self.path.name


def load_module(path: Path) -> Module:
    module = Module(path=path)
    for tf_file in sorted(path.glob("*.tf")):
        parsed = load_hcl(tf_file.read_text())
        for block in parsed.get("variable", []):
            module.variables.update(block)
        for block in parsed.get("output", []):
            module.outputs.update(block)
        for block in parsed.get("locals", []):
            module.locals.update({k: v for k, v in block.items() if not k.startswith("__")})
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for block in parsed.get(kind, []):
                for type_name, named in block.items():
                    for name, body in named.items():
                        target[(type_name, name)] = body
        for block in parsed.get("module", []):
            module.modules.update(block)
        module.blocks.append(parsed)
    return module


def all_module_dirs() -> list[Path]:
    return [TERRAFORM_DIR, *sorted(p for p in MODULES_DIR.iterdir() if p.is_dir())]


def strings(node: Any) -> Iterator[str]:
    """Every string in a parsed structure (keys too), skipping comments and lifecycle lists."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("__") or key == "ignore_changes":
                continue
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def expressions(node: Any) -> Iterator[str]:
    """The code of every expression in a parsed structure, without string literals.

    python-hcl2 gives an expression as "${...}" and a quoted template as literal text with "${...}"
    parts; only the code can reference anything ("../scripts/user-data.sh" is not data.sh).
    """
    for text in strings(node):
        if "${" in text or "%{" in text:
            yield " ".join(_template_code(text))


def _template_code(text: str) -> list[str]:
    code: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith(("$${", "%%{"), index):
            index += 3
        elif text.startswith(("${", "%{"), index):
            fragments, index = _expression_code(text, index + 2)
            code.extend(fragments)
        else:
            index += 1
    return code


def _expression_code(text: str, index: int) -> tuple[list[str], int]:
    """Code from `index` to the brace closing the expression, and the index after that brace."""
    fragments: list[str] = []
    current: list[str] = []
    depth = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            inner, index = _quoted_code(text, index + 1)
            fragments.extend(inner)
            current.append(" ")
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                fragments.append("".join(current))
                return fragments, index + 1
            depth -= 1
        current.append(char)
        index += 1
    fragments.append("".join(current))
    return fragments, index


def _quoted_code(text: str, index: int) -> tuple[list[str], int]:
    """Code of the interpolations in a quoted string, and the index after its closing quote."""
    fragments: list[str] = []
    while index < len(text):
        if text[index] == "\\":
            index += 2
        elif text[index] == '"':
            return fragments, index + 1
        elif text.startswith("$${", index):
            index += 3
        elif text.startswith(("${", "%{"), index):
            inner, index = _expression_code(text, index + 2)
            fragments.extend(inner)
        else:
            index += 1
    return fragments, index


def first_block(value: Any) -> dict[str, Any]:
    """A nested block as a dict (python-hcl2 gives a list of one dict per block)."""
    if isinstance(value, list):
        return value[0] if value and isinstance(value[0], dict) else {}
    return value if isinstance(value, dict) else {}


def all_blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return [value] if isinstance(value, dict) else []


################################################################################
# Generic structure checks
################################################################################


def check_variables_typed_and_described(module: Module) -> list[str]:
    problems = []
    for name, body in module.variables.items():
        if "type" not in body:
            problems.append(f"{module.name}: variable {name} has no type")
        if not str(body.get("description", "")).strip():
            problems.append(f"{module.name}: variable {name} has no description")
    return problems


def check_outputs_described(module: Module) -> list[str]:
    problems = []
    for name, body in module.outputs.items():
        if not str(body.get("description", "")).strip():
            problems.append(f"{module.name}: output {name} has no description")
        if "value" not in body:
            problems.append(f"{module.name}: output {name} has no value")
    return problems


def check_var_references(module: Module) -> list[str]:
    used = {match for text in expressions(module.blocks) for match in _VAR_REF.findall(text)}
    return [
        f"{module.name}: var.{name} is used but not declared" for name in sorted(used - set(module.variables))
    ]


def check_references(module: Module) -> list[str]:
    """Every local., module., data. and resource reference points at something declared."""
    problems = []
    resource_names = set(module.resources)
    data_names = set(module.data)
    for text in expressions(module.blocks):
        for name in _LOCAL_REF.findall(text):
            if name not in module.locals:
                problems.append(f"{module.name}: local.{name} is not defined")
        for name in _MODULE_REF.findall(text):
            if name not in module.modules:
                problems.append(f"{module.name}: module.{name} is not declared")
        for type_name, name in _DATA_REF.findall(text):
            if (type_name, name) not in data_names:
                problems.append(f"{module.name}: data.{type_name}.{name} is not declared")
        for type_name, name in _RESOURCE_REF.findall(text):
            if (type_name, name) not in resource_names:
                problems.append(f"{module.name}: {type_name}.{name} is not declared")
    return sorted(set(problems))


def check_module_calls(module: Module) -> list[str]:
    """Module calls pass only declared variables, all required ones, to local sources that exist."""
    problems = []
    for call_name, body in module.modules.items():
        source = str(body.get("source", ""))
        if not source.startswith("./"):
            problems.append(f"{module.name}: module {call_name} has a non-local source {source!r}")
            continue
        target_path = (module.path / source).resolve()
        if not target_path.is_dir():
            problems.append(f"{module.name}: module {call_name} source {source} does not exist")
            continue
        target = load_module(target_path)
        passed = {key for key in body if not key.startswith("__")} - MODULE_META_ARGUMENTS
        for name in sorted(passed - set(target.variables)):
            problems.append(
                f"{module.name}: module {call_name} passes {name}, which {source} does not declare"
            )
        required = {name for name, var in target.variables.items() if "default" not in var}
        for name in sorted(required - passed):
            problems.append(f"{module.name}: module {call_name} does not pass required variable {name}")
        for text in expressions(module.blocks):
            for output in re.findall(
                rf"(?<![\w.])module\.{re.escape(call_name)}(?:\[[^\]]*\])?\.([A-Za-z_][\w-]*)", text
            ):
                if output not in target.outputs:
                    problems.append(
                        f"{module.name}: module.{call_name}.{output} is not an output of {source}"
                    )
    return sorted(set(problems))


def check_required_files(path: Path) -> list[str]:
    expected = ["main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"]
    return [f"{path.name}: {name} is missing" for name in expected if not (path / name).is_file()]


def check_versions(module: Module) -> list[str]:
    """terraform >= 1.5 and the AWS provider >= 5."""
    problems = []
    terraform_blocks = [block for parsed in module.blocks for block in parsed.get("terraform", [])]
    if not terraform_blocks:
        return [f"{module.name}: no terraform block"]
    settings = terraform_blocks[0]
    required_version = str(settings.get("required_version", ""))
    if not re.fullmatch(r">=\s*1\.(5|[6-9]|\d{2,})(\.\d+)?", required_version):
        problems.append(f"{module.name}: required_version {required_version!r} is not >= 1.5")
    providers = first_block(settings.get("required_providers", []))
    aws = providers.get("aws", {})
    if aws.get("source") != "hashicorp/aws":
        problems.append(f"{module.name}: the aws provider source is not hashicorp/aws")
    constraint = str(aws.get("version", ""))
    lower = re.search(r">=\s*(\d+)", constraint)
    if not lower or int(lower.group(1)) < 5:
        problems.append(f"{module.name}: the aws provider constraint {constraint!r} does not require >= 5")
    return problems


def check_readme_documents(module: Module) -> list[str]:
    """The module README names every input and output and has a usage example."""
    readme = module.path / "README.md"
    if not readme.is_file():
        return [f"{module.name}: README.md is missing"]
    text = readme.read_text()
    problems = [
        f"{module.name}: README does not document input {name}"
        for name in module.variables
        if f"`{name}`" not in text
    ]
    problems += [
        f"{module.name}: README does not document output {name}"
        for name in module.outputs
        if f"`{name}`" not in text
    ]
    if "```hcl" not in text:
        problems.append(f"{module.name}: README has no HCL usage example")
    return problems


def type_expression(variable: dict[str, Any]) -> str:
    """A variable's type constraint as written: bool, list(string), object({...})."""
    declared = str(variable.get("type", ""))
    return declared[2:-1] if declared.startswith("${") and declared.endswith("}") else declared


def check_tfvars(text: str, root: Module) -> list[str]:
    """A tfvars file sets only declared root variables, with values the variable type can take."""
    problems = []
    values = load_hcl(text)
    for name, value in values.items():
        if name.startswith("__"):
            continue
        if name not in root.variables:
            problems.append(f"tfvars sets {name}, which the root module does not declare")
            continue
        declared = type_expression(root.variables[name])
        if declared == "bool" and not isinstance(value, bool):
            problems.append(f"tfvars sets {name} = {value!r}, but it is a bool")
        if declared == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"tfvars sets {name} = {value!r}, but it is a number")
        if declared.startswith("list(") and not isinstance(value, list):
            problems.append(f"tfvars sets {name} = {value!r}, but it is a list")
    return problems


################################################################################
# Variable validations: where they live and which root variables reach them
################################################################################

ROOT_FOLDER = "."
# (folder relative to terraform/, variable): "." is the root module, "modules/vpc" a module.
VariableAddress = tuple[str, str]

_VARIABLE_LINE = re.compile(r'^variable "([A-Za-z_][\w-]*)"')
_VALIDATION_LINE = re.compile(r"^\s+validation\s*\{")
# How Terraform names the rule in a failed validation's detail: "...at modules/vpc/variables.tf:42,3-13."
_VALIDATION_RULE = re.compile(r"validation rule at (?P<file>\S+?):(?P<line>\d+),")


def validation_rules(terraform_dir: Path = TERRAFORM_DIR) -> dict[tuple[str, int], VariableAddress]:
    """Every validation block of the root and its modules, by (file relative to terraform_dir, line)."""
    rules: dict[tuple[str, int], VariableAddress] = {}
    folders = [terraform_dir, *sorted(p for p in (terraform_dir / "modules").iterdir() if p.is_dir())]
    for folder in folders:
        relative_folder = folder.relative_to(terraform_dir).as_posix()
        for tf_file in sorted(folder.glob("*.tf")):
            variable = None
            for number, line in enumerate(tf_file.read_text().splitlines(), start=1):
                if match := _VARIABLE_LINE.match(line):
                    variable = match.group(1)
                elif line and not line[0].isspace() and line[0] not in "#}":
                    variable = None
                elif variable is not None and _VALIDATION_LINE.match(line):
                    file = tf_file.relative_to(terraform_dir).as_posix()
                    rules[(file, number)] = (relative_folder, variable)
    return rules


def failed_rule(detail: str) -> tuple[str, int] | None:
    """(file, line) of the validation rule a diagnostic's detail names, or None for any other error."""
    match = _VALIDATION_RULE.search(detail)
    return (match.group("file"), int(match.group("line"))) if match else None


def failed_validation(detail: str, rules: dict[tuple[str, int], VariableAddress]) -> VariableAddress | None:
    """The variable whose validation a diagnostic's detail names, or None for any other error."""
    rule = failed_rule(detail)
    return rules.get(rule) if rule else None


def _referenced_variables(node: Any, module: Module, seen: frozenset[str] = frozenset()) -> set[str]:
    """Root variables an expression reads, directly or through locals."""
    found: set[str] = set()
    for text in expressions(node):
        found |= set(_VAR_REF.findall(text))
        for name in set(_LOCAL_REF.findall(text)) - seen:
            found |= _referenced_variables(module.locals.get(name), module, seen | {name})
    return found


def root_variable_targets(root: Module) -> dict[str, set[VariableAddress]]:
    """For every root variable: itself and each module variable its value is passed to (also through
    locals), or whose validation compares against one it is passed to, so that a bad value is
    refused by a validation at one of these addresses."""
    targets: dict[str, set[VariableAddress]] = {name: {(ROOT_FOLDER, name)} for name in root.variables}
    for body in root.modules.values():
        source = str(body.get("source", ""))
        folder = source.removeprefix("./")
        # Module variable -> the module variables its validations read (itself included).
        module = load_module((root.path / source).resolve())
        read_by = {
            name: set(_VAR_REF.findall(" ".join(expressions(variable.get("validation", []))))) | {name}
            for name, variable in module.variables.items()
        }
        for argument, value in body.items():
            if argument.startswith("__") or argument in MODULE_META_ARGUMENTS:
                continue
            checked_by = {name for name, reads in read_by.items() if argument in reads} | {argument}
            for name in _referenced_variables(value, root):
                targets.setdefault(name, set()).update((folder, checked) for checked in checked_by)
    return targets


def required_refusals(
    targets: dict[str, set[VariableAddress]],
    validated: set[VariableAddress],
    switches: frozenset[str] | set[str] = frozenset(),
) -> set[VariableAddress]:
    """Validated variables a user can reach with a bad value through the root.

    A module variable fed only by root variables that validate themselves is behind those
    validations: a bad value stops there (and leaves the module's input unknown), so the module's
    rule never fires from the root. Such rules are tested with the module, not required here.
    Switches (bool root variables) only select what a module gets: they have no bad value."""
    feeders: dict[VariableAddress, set[str]] = {}
    for name, addresses in targets.items():
        if name in switches:
            continue
        for address in addresses:
            feeders.setdefault(address, set()).add(name)
    root_validated = {name for folder, name in validated if folder == ROOT_FOLDER}
    return {
        address
        for address in validated
        if address in feeders and (address[0] == ROOT_FOLDER or not feeders[address] <= root_validated)
    }


def module_defaults(root: Module) -> dict[str, tuple[str, Any]]:
    """(module folder, default) for each root variable that defaults to null and is passed as is to
    a module variable with a default: the value Terraform uses when the variable is not set."""
    found: dict[str, tuple[str, Any]] = {}
    for body in root.modules.values():
        source = str(body.get("source", ""))
        module = load_module((root.path / source).resolve())
        for argument, value in body.items():
            match = re.fullmatch(r"\$\{var\.([A-Za-z_][\w-]*)\}", str(value))
            if match is None or argument not in module.variables:
                continue
            name = match.group(1)
            variable = root.variables.get(name, {})
            default = module.variables[argument].get("default")
            if "default" in variable and variable["default"] is None and default is not None:
                found[name] = (source.removeprefix("./"), default)
    return found


def hcl_value(value: Any) -> str:
    """A parsed value written back as HCL (as terraform-docs writes defaults)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(hcl_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {hcl_value(item)}" for key, item in value.items()) + "}"
    return str(value)


def readme_default(root: Module, name: str) -> str:
    """The Default cell of a root variable in terraform/README.md: its default, and for a null that
    lets a module's default serve, that default and the module."""
    variable = root.variables[name]
    cell = f"`{hcl_value(variable.get('default'))}`"
    if (module_default := module_defaults(root).get(name)) is not None:
        folder, value = module_default
        cell += f": `{hcl_value(value)}` ({folder})"
    return cell


def check_readme_inputs(readme: str, root: Module) -> list[str]:
    """terraform/README.md's Inputs table has one row per root variable with its description and
    default (the module default where a null lets it serve)."""
    rows: dict[str, list[str]] = {}
    for line in readme.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"`[a-z0-9_]+`", cells[0]):
            rows[cells[0].strip("`")] = cells
    problems = [f"README Inputs table lacks {name}" for name in root.variables if name not in rows]
    for name, cells in rows.items():
        if name not in root.variables:
            continue  # an output's row, or an unknown name the first check does not cover
        if cells[1] != str(root.variables[name].get("description", "")):
            problems.append(f"README Inputs: the description of {name} differs from variables.tf")
        if cells[3] != (default := readme_default(root, name)):
            problems.append(f"README Inputs: {name} shows default {cells[3]}, not {default}")
    return problems


def _normalised_conditions(name: str, body: dict[str, Any]) -> set[str]:
    """A variable's validation conditions with its own name replaced, so copies compare equal."""
    own = re.compile(rf"(?<![\w.])var\.{re.escape(name)}(?![\w-])")
    return {
        re.sub(r"\s+", "", own.sub("var.SELF", str(block.get("condition", ""))))
        for block in all_blocks(body.get("validation", []))
    }


def check_root_validations_not_repeated(root: Module, modules: list[Module]) -> list[str]:
    """No root variable repeats a module variable's validation: the module that uses a value checks it."""
    problems = []
    module_conditions = {
        (module.name, name): _normalised_conditions(name, body)
        for module in modules
        for name, body in module.variables.items()
    }
    for name, body in root.variables.items():
        for condition in sorted(_normalised_conditions(name, body)):
            for (module_name, variable), conditions in sorted(module_conditions.items()):
                if condition in conditions:
                    problems.append(
                        f"root variable {name} repeats the validation of modules/{module_name} "
                        f"variable {variable}: let the module refuse the value"
                    )
    return problems


################################################################################
# Security checks
################################################################################


def _covers(body: dict[str, Any], bucket_ref: str, attribute: str = "bucket") -> bool:
    """Whether a companion resource (or policy document) applies to the aws_s3_bucket `bucket_ref`."""
    pattern = re.compile(re.escape(bucket_ref) + r"(?![\w-])")
    value = " ".join(strings(body.get(attribute, "")))
    if pattern.search(value):
        return True
    for_each = " ".join(strings(body.get("for_each", "")))
    return bool(pattern.search(for_each)) and "each.value" in value


def check_s3_buckets(module: Module) -> list[str]:
    """Every bucket blocks public access, has default encryption, versioning and a TLS-only policy."""
    problems = []
    for type_name, name in module.resources:
        if type_name != "aws_s3_bucket":
            continue
        ref = f"aws_s3_bucket.{name}"

        def companions(kind: str, ref: str = ref) -> list[dict[str, Any]]:
            return [body for (t, _), body in module.resources.items() if t == kind and _covers(body, ref)]

        blocks = companions("aws_s3_bucket_public_access_block")
        flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
        if not blocks or not all(block.get(flag) is True for block in blocks for flag in flags):
            problems.append(f"{module.name}: {ref} has no public access block with all four flags true")
        encryption = companions("aws_s3_bucket_server_side_encryption_configuration")
        if not encryption or not all(
            first_block(first_block(e.get("rule")).get("apply_server_side_encryption_by_default"))
            for e in encryption
        ):
            problems.append(f"{module.name}: {ref} has no default encryption")
        versioning = companions("aws_s3_bucket_versioning")
        if not versioning or not all(
            first_block(v.get("versioning_configuration")).get("status") == "Enabled" for v in versioning
        ):
            problems.append(f"{module.name}: {ref} has no versioning")
        policies = companions("aws_s3_bucket_policy")
        if not policies or not all(_denies_insecure_transport(module, policy) for policy in policies):
            problems.append(f"{module.name}: {ref} has no TLS-only bucket policy")
    return problems


def _denies_insecure_transport(module: Module, policy_resource: dict[str, Any]) -> bool:
    refs = _DATA_REF.findall(" ".join(strings(policy_resource.get("policy", ""))))
    for type_name, name in refs:
        document = module.data.get((type_name, name), {})
        for statement in all_blocks(document.get("statement", [])):
            conditions = all_blocks(statement.get("condition", []))
            if statement.get("effect") == "Deny" and any(
                c.get("variable") == "aws:SecureTransport" and c.get("values") == ["false"]
                for c in conditions
            ):
                return True
    return False


def check_instances(module: Module) -> list[str]:
    """IMDSv2 only and encrypted root volumes, on instances and launch templates."""
    problems = []
    for (type_name, name), body in module.resources.items():
        if type_name == "aws_instance":
            if first_block(body.get("metadata_options")).get("http_tokens") != "required":
                problems.append(f"{module.name}: aws_instance.{name} does not require IMDSv2")
            if first_block(body.get("root_block_device")).get("encrypted") is not True:
                problems.append(f"{module.name}: aws_instance.{name} has an unencrypted root volume")
        if type_name == "aws_launch_template":
            if first_block(body.get("metadata_options")).get("http_tokens") != "required":
                problems.append(f"{module.name}: aws_launch_template.{name} does not require IMDSv2")
            for mapping in all_blocks(body.get("block_device_mappings", [])):
                if first_block(mapping.get("ebs")).get("encrypted") is not True:
                    problems.append(f"{module.name}: aws_launch_template.{name} has an unencrypted volume")
    return problems


def _key_policy_documents(module: Module) -> set[str]:
    documents: set[str] = set()
    for (type_name, _), body in module.resources.items():
        if type_name in {"aws_kms_key", "aws_kms_key_policy"}:
            documents.update(name for _, name in _DATA_REF.findall(" ".join(strings(body.get("policy", "")))))
    return documents


def _statements(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from all_blocks(document.get("statement", []))
    for dynamic in all_blocks(document.get("dynamic", [])):
        for content in all_blocks(dynamic.get("statement", {})):
            yield from all_blocks(content.get("content", []))


def check_iam_policies(module: Module) -> list[str]:
    """No allowed action "*" or "service:*"; "*" resources only where AWS allows nothing narrower."""
    problems = []
    key_policies = _key_policy_documents(module)
    for (type_name, name), document in module.data.items():
        if type_name != "aws_iam_policy_document":
            continue
        for statement in _statements(document):
            if statement.get("effect", "Allow") == "Deny":
                continue
            actions = [str(action) for action in statement.get("actions", [])]
            for action in actions:
                if _WILDCARD_ACTION.match(action):
                    reference = f"data.aws_iam_policy_document.{name}"
                    problems.append(f"{module.name}: {reference} allows the wildcard action {action}")
            if statement.get("resources") == ["*"] and name not in key_policies:
                unscoped = sorted(set(actions) - UNSCOPABLE_ACTIONS)
                if unscoped:
                    problems.append(
                        f"{module.name}: data.aws_iam_policy_document.{name} grants {unscoped} on '*'"
                    )
    for (type_name, name), body in module.resources.items():
        if type_name in {"aws_iam_role_policy", "aws_iam_policy"}:
            policy = " ".join(strings(body.get("policy", "")))
            # Through a local (a map of documents) is fine when the local is built from documents.
            for local_name in _LOCAL_REF.findall(policy):
                policy += " " + " ".join(strings(module.locals.get(local_name, "")))
            if "data.aws_iam_policy_document." not in policy:
                problems.append(
                    f"{module.name}: {type_name}.{name} is not built from an aws_iam_policy_document"
                )
    return problems


def check_ingress(module: Module) -> list[str]:
    """Ingress never from the internet, and from CIDRs only out of a variable list or the VPC itself."""
    problems = []
    for (type_name, name), body in module.resources.items():
        if type_name == "aws_vpc_security_group_ingress_rule":
            cidr4 = str(body.get("cidr_ipv4", ""))
            cidr6 = str(body.get("cidr_ipv6", ""))
            if cidr4 == "0.0.0.0/0" or cidr6 == "::/0":
                problems.append(f"{module.name}: {type_name}.{name} admits the whole internet")
            elif cidr4 and not (
                ("each.value" in cidr4 and "var." in str(body.get("for_each", ""))) or "cidr_block" in cidr4
            ):
                problems.append(
                    f"{module.name}: {type_name}.{name} admits {cidr4}, not from a variable list or the VPC"
                )
            if cidr6:
                problems.append(f"{module.name}: {type_name}.{name} admits IPv6 {cidr6}")
        if type_name in {"aws_security_group", "aws_default_security_group"}:
            for rule in all_blocks(body.get("ingress", [])):
                if "0.0.0.0/0" in rule.get("cidr_blocks", []) or "::/0" in rule.get("ipv6_cidr_blocks", []):
                    problems.append(
                        f"{module.name}: {type_name}.{name} has an inline ingress from the internet"
                    )
        if (
            type_name == "aws_security_group_rule"
            and body.get("type") == "ingress"
            and "0.0.0.0/0" in body.get("cidr_blocks", [])
        ):
            problems.append(f"{module.name}: {type_name}.{name} admits the whole internet")
    return problems


################################################################################
# Project contracts
################################################################################


def lambda_environment(module: Module) -> dict[str, set[str]]:
    """Environment variable names the lambda module sets, by function key."""
    environment = module.locals.get("environment", {})
    return {
        function: {key for key in variables if not key.startswith("__")}
        for function, variables in environment.items()
    }


def check_lambda_environment(module: Module, contract: dict[str, dict[str, str | None]]) -> list[str]:
    problems = []
    actual = lambda_environment(module)
    for function in sorted(set(contract) | set(actual)):
        expected = set(contract.get(function, {}))
        present = actual.get(function)
        if present is None:
            problems.append(f"lambda module sets no environment for {function}")
            continue
        if function not in contract:
            problems.append(f"lambda module has an environment for {function}, which env.py does not list")
            continue
        for name in sorted(expected - present):
            problems.append(f"{function}: env.py lists {name} but the lambda module does not set it")
        for name in sorted(present - expected):
            problems.append(f"{function}: the lambda module sets {name}, which env.py does not list")
    return problems


# Where each naming.json pattern is spelled in HCL: (module folder relative to terraform/, path).
NAME_LOCATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "input_bucket": ("modules/s3", ("bucket_names", "input")),
    "output_bucket": ("modules/s3", ("bucket_names", "output")),
    "models_bucket": ("modules/s3", ("bucket_names", "models")),
    "access_logs_bucket": ("modules/s3", ("access_logs_bucket_name",)),
    "trigger_topic": ("modules/sns", ("topic_names", "trigger")),
    "notifications_topic": ("modules/sns", ("topic_names", "notifications")),
    "trigger_dlq": (".", ("names", "trigger_dlq")),
    "monitor_dlq": (".", ("names", "monitor_dlq")),
    "s3_event_queue": ("modules/event_queue", ("names", "queue")),
    "s3_event_dlq": (".", ("names", "s3_event_dlq")),
    "idempotency_table": (".", ("names", "idempotency_table")),
    "api_key_parameter": (".", ("names", "api_key_parameter")),
    "gpu_job_queue": ("modules/batch", ("queue_names", "gpu")),
    "cpu_job_queue": ("modules/batch", ("queue_names", "cpu")),
    "script_runner_gpu_job_definition": ("modules/batch", ("job_definition_names", "script_runner_gpu")),
    "script_runner_cpu_job_definition": ("modules/batch", ("job_definition_names", "script_runner_cpu")),
    "face_embedding_gpu_job_definition": ("modules/batch", ("job_definition_names", "face_embedding_gpu")),
    "face_embedding_cpu_job_definition": ("modules/batch", ("job_definition_names", "face_embedding_cpu")),
    "batch_log_group": ("modules/batch", ("log_group_name",)),
    "dispatcher_function": ("modules/lambda", ("function_names", "dispatcher")),
    "controller_function": ("modules/lambda", ("function_names", "controller")),
    "monitor_function": ("modules/lambda", ("function_names", "monitor")),
    "idle_stopper_function": ("modules/lambda", ("function_names", "idle_stopper")),
    "gpu_instance": ("modules/ec2_gpu", ("name",)),
    "gpu_instance_log_group": ("modules/ec2_gpu", ("log_group_name",)),
    "name_prefix": (".", ("name_prefix",)),
}

_PLACEHOLDERS = {
    "${var.name_prefix}": "{name_prefix}",
    "${local.name_prefix}": "{name_prefix}",
    "${var.project_name}": "{project_name}",
    "${var.environment}": "{environment}",
    "${local.account_id}": "{account_id}",
}


def hcl_name_pattern(expression: str) -> str:
    """A naming.json-style pattern from an HCL string such as "${var.name_prefix}-gpu-queue"."""
    for interpolation, placeholder in _PLACEHOLDERS.items():
        expression = expression.replace(interpolation, placeholder)
    return expression


def check_naming(naming: dict[str, Any], modules: dict[str, Module]) -> list[str]:
    problems = []
    root = modules["."]
    for variable in ("project_name", "environment"):
        default = root.variables.get(variable, {}).get("default")
        if naming.get(variable) != default:
            problems.append(
                f"naming.json {variable} is {naming.get(variable)!r}, the variable default is {default!r}"
            )
    patterns = dict(naming.get("patterns", {}))
    for key in sorted(set(patterns) | set(NAME_LOCATIONS)):
        if key not in NAME_LOCATIONS:
            problems.append(f"naming.json pattern {key} has no known HCL location")
            continue
        if key not in patterns:
            problems.append(f"naming.json lacks the pattern {key}")
            continue
        folder, path = NAME_LOCATIONS[key]
        value: Any = modules[folder].locals
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str):
            problems.append(f"{key}: no HCL value at {folder} locals.{'.'.join(path)}")
            continue
        if hcl_name_pattern(value) != patterns[key]:
            problems.append(
                f"{key}: HCL builds {hcl_name_pattern(value)!r}, naming.json says {patterns[key]!r}"
            )
    return problems


def load_naming() -> dict[str, Any]:
    return json.loads(NAMING_FILE.read_text())
