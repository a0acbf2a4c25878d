"""`cronkeeper jobs …` against a real server: what a user types and what they see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    ANSI_ESCAPE,
    Cli,
    Project,
    Result,
    Server,
    assert_one_error_line,
    clean_env,
    create_key,
    data,
    ok,
    run_process,
)

CREATE_WEB_JOB = (
    *("jobs", "create", "--slug", "web", "--schedule", "*/5 * * * *"),
    *("--target-url", "https://example.com/x", "-H", "Authorization: Bearer s3cret"),
    *("--tag", "web"),
)


def show(jobs: Cli, slug: str) -> dict[str, Any]:
    job: dict[str, Any] = data(jobs("jobs", "show", slug, "--json"))
    return job


@pytest.fixture
def jobs(cli: Cli, api_env: Project) -> Cli:
    """`jobs(...)` = `cli(...)` in the test's own project, its key in the environment."""

    def invoke(*argv: str) -> Result:
        return cli(*argv, "--project", api_env.slug)

    return invoke


# --- Creating jobs --------------------------------------------------------------------------


def test_create_with_flags_names_the_job_and_masks_the_secret(jobs: Cli) -> None:
    result = ok(jobs(*CREATE_WEB_JOB))
    assert result.out.splitlines()[0] == "created job web"
    assert "*/5 * * * *" in result.out
    assert "https://example.com/x" in result.out
    assert "s3cret" not in result.out


def test_a_created_job_keeps_its_secret_header_on_the_server_but_shows_it_masked(
    jobs: Cli,
) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    job = show(jobs, "web")
    assert job["kind"] == "http"
    assert job["schedule"] == "*/5 * * * *"
    assert job["tags"] == ["web"]
    assert job["target"]["url"] == "https://example.com/x"
    assert job["target"]["headers"] == {"Authorization": "********"}


def test_create_works_with_url_and_api_key_flags_instead_of_the_environment(
    cli: Cli, server: Server, project: Project
) -> None:
    flags = ("--url", server.url, "--api-key", project.key, "--project", project.slug)
    result = ok(cli(*CREATE_WEB_JOB, *flags))
    assert "created job web" in result.out
    listed = data(cli("jobs", "list", "--json", *flags))
    assert [job["slug"] for job in listed["items"]] == ["web"]


def test_create_in_a_real_process_with_the_environment(server: Server, project: Project) -> None:
    env = clean_env(CRONKEEPER_URL=server.url, CRONKEEPER_API_KEY=project.key)
    result = run_process(*CREATE_WEB_JOB, "--project", project.slug, env=env)
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.startswith("created job web\n")
    assert ANSI_ESCAPE not in result.out
    assert "s3cret" not in result.out


def test_create_from_a_yaml_file(jobs: Cli, tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "slug: nightly-report\n"
        "kind: http\n"
        "schedule: '0 2 * * *'\n"
        "timezone: Europe/Berlin\n"
        "target:\n"
        "  method: POST\n"
        "  url: https://reports.example.com/run\n"
        "timeout: 30s\n"
        "retry: {max_attempts: 5, backoff: 250ms}\n"
    )
    ok(jobs("jobs", "create", "-f", str(path)))
    job = show(jobs, "nightly-report")
    assert job["timezone"] == "Europe/Berlin"
    assert job["target"]["method"] == "POST"
    assert job["timeout"] == 30
    assert job["retry"]["max_attempts"] == 5
    assert job["retry"]["backoff"] == 0.25


def test_create_from_a_json_file_where_flags_win(jobs: Cli, tmp_path: Path) -> None:
    path = tmp_path / "job.json"
    body = {
        "slug": "from-json",
        "kind": "http",
        "schedule": "@daily",
        "target": {"url": "https://a.example.com/", "headers": {"Accept": "text/plain"}},
    }
    path.write_text(json.dumps(body))
    ok(jobs("jobs", "create", "--file", str(path), "--schedule", "@hourly"))
    job = show(jobs, "from-json")
    assert job["schedule"] == "@hourly"
    assert job["target"]["headers"] == {"Accept": "text/plain"}


def test_create_reads_the_job_from_stdin_with_dash(server: Server, project: Project) -> None:
    env = clean_env(CRONKEEPER_URL=server.url, CRONKEEPER_API_KEY=project.key)
    body = {"slug": "piped", "kind": "heartbeat", "schedule": "@daily"}
    result = run_process(
        "jobs", "create", "-f", "-", "--json", "-p", project.slug, env=env, stdin=json.dumps(body)
    )
    assert result.code == 0, result.err
    job = json.loads(result.out)["data"]
    assert job["slug"] == "piped"
    assert job["ping_url"]


def test_create_with_json_prints_only_the_envelope(jobs: Cli) -> None:
    job = data(jobs(*CREATE_WEB_JOB, "--json"))
    assert job["slug"] == "web"
    assert job["status"] == "active"
    assert len(job["next_fires"]) == 3


def test_a_command_flag_makes_a_shell_command_job(jobs: Cli) -> None:
    ok(jobs("jobs", "create", "--slug", "backup", "--command", "pg_dump app | gzip > /b/a.gz"))
    job = show(jobs, "backup")
    assert job["kind"] == "command"
    assert job["target"]["command"] == "pg_dump app | gzip > /b/a.gz"
    assert job["target"]["shell"] is True


# --- Reading jobs ---------------------------------------------------------------------------


def test_list_shows_slug_and_schedule_as_plain_text(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    ok(
        jobs(
            "jobs",
            "create",
            "--slug",
            "nightly",
            "--schedule",
            "@daily",
            "--target-url",
            "https://example.com/n",
        )
    )
    result = ok(jobs("jobs", "list"))
    assert "SLUG" in result.out
    assert "SCHEDULE" in result.out
    web = next(line for line in result.out.splitlines() if " web " in f" {line} ")
    assert "*/5 * * * *" in web
    assert "active" in web
    nightly = next(line for line in result.out.splitlines() if "nightly" in line)
    assert "@daily" in nightly


def test_an_empty_project_says_how_to_create_a_job(jobs: Cli) -> None:
    result = ok(jobs("jobs", "list"))
    assert "No jobs yet" in result.out
    assert "cronkeeper jobs create" in result.out


def test_list_json_is_the_api_envelope_of_exactly_this_projects_jobs(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    listed = data(jobs("jobs", "list", "--json"))
    assert [job["slug"] for job in listed["items"]] == ["web"]
    assert listed["items"][0]["target"]["headers"] == {"Authorization": "********"}
    assert "next_cursor" in listed


def test_list_filters_by_tag(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    ok(jobs("jobs", "create", "--slug", "other", "--target-url", "https://example.com/o"))
    listed = data(jobs("jobs", "list", "--tag", "web", "--json"))
    assert [job["slug"] for job in listed["items"]] == ["web"]


def test_show_json_gives_the_job_with_schedule_in_words_and_next_fires(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    job = data(jobs("jobs", "show", "web", "--json"))
    assert job["slug"] == "web"
    assert job["schedule_description"]
    assert len(job["next_fires"]) == 3
    assert job["monitor_state"] == "new"


def test_show_as_a_card_lists_the_schedule_in_words(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    job = show(jobs, "web")
    result = ok(jobs("jobs", "show", "web"))
    assert job["schedule_description"] in result.out
    assert "s3cret" not in result.out


# --- Changing jobs --------------------------------------------------------------------------


def test_edit_changes_schedule_and_timezone(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    result = ok(jobs("jobs", "edit", "web", "--schedule", "@hourly", "--timezone", "Europe/Berlin"))
    assert result.out.splitlines()[0] == "updated job web"
    job = show(jobs, "web")
    assert job["schedule"] == "@hourly"
    assert job["timezone"] == "Europe/Berlin"


def test_editing_another_field_keeps_the_masked_secret(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    ok(jobs("jobs", "edit", "web", "--description", "Front page warmer"))
    job = show(jobs, "web")
    assert job["description"] == "Front page warmer"
    assert job["target"]["headers"] == {"Authorization": "********"}


def test_edit_without_any_change_is_a_usage_error(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    result = jobs("jobs", "edit", "web")
    assert result.code == 2
    assert "nothing to change" in assert_one_error_line(result)


def test_pause_and_resume_print_the_new_state(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    paused = ok(jobs("jobs", "pause", "web"))
    assert paused.out.strip() == "paused job web"
    assert show(jobs, "web")["status"] == "paused"
    resumed = ok(jobs("jobs", "resume", "web"))
    assert resumed.out.startswith("resumed job web; next fire ")
    assert show(jobs, "web")["status"] == "active"


def test_pause_json_is_the_envelope_of_the_paused_job(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    assert data(jobs("jobs", "pause", "web", "--json"))["status"] == "paused"


def test_delete_with_yes_removes_the_job(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    assert ok(jobs("jobs", "delete", "web", "-y")).out.strip() == "deleted job web"
    gone = jobs("jobs", "show", "web")
    assert gone.code == 1
    assert "web" in assert_one_error_line(gone)


def test_declining_the_delete_question_keeps_the_job(
    jobs: Cli, server: Server, project: Project
) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    env = clean_env(CRONKEEPER_URL=server.url, CRONKEEPER_API_KEY=project.key)
    result = run_process("jobs", "delete", "web", "-p", project.slug, env=env, stdin="n\n")
    assert result.code != 0
    assert "Traceback" not in result.err
    assert show(jobs, "web")["slug"] == "web"


# --- Errors: one line on stderr, the right exit code ----------------------------------------


def test_an_invalid_schedule_is_reported_by_the_server_on_one_line(jobs: Cli) -> None:
    result = jobs(
        "jobs",
        "create",
        "--slug",
        "bad",
        "--schedule",
        "every tuesday-ish",
        "--target-url",
        "https://example.com/x",
    )
    assert result.code == 1
    assert result.out == ""
    assert "schedule" in assert_one_error_line(result)


def test_an_invalid_schedule_in_a_real_process_has_no_traceback(
    server: Server, project: Project
) -> None:
    env = clean_env(CRONKEEPER_URL=server.url, CRONKEEPER_API_KEY=project.key)
    result = run_process(
        "jobs",
        "create",
        "--slug",
        "bad",
        "--schedule",
        "61 * * * *",
        "--target-url",
        "https://example.com/x",
        "-p",
        project.slug,
        env=env,
    )
    assert result.code == 1
    assert "schedule" in assert_one_error_line(result)


def test_an_unknown_field_in_a_file_is_named(jobs: Cli, tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("slug: x\nkind: http\ntarget: {url: 'https://e.example/'}\ncolour: blue\n")
    result = jobs("jobs", "create", "-f", str(path))
    assert result.code == 1
    assert "colour" in assert_one_error_line(result)


def test_creating_a_slug_twice_is_a_conflict(jobs: Cli) -> None:
    ok(jobs(*CREATE_WEB_JOB))
    result = jobs(*CREATE_WEB_JOB)
    assert result.code == 1
    assert "web" in assert_one_error_line(result)


def test_showing_an_unknown_job_fails_with_one_line(jobs: Cli) -> None:
    result = jobs("jobs", "show", "no-such-job")
    assert result.code == 1
    assert "no-such-job" in assert_one_error_line(result)


def test_a_read_key_cannot_create_jobs(cli: Cli, server: Server, project: Project) -> None:
    reader = create_key(server.db, project.slug, role="read", name="viewer")
    flags = ("--url", server.url, "--api-key", reader, "-p", project.slug)
    result = cli(*CREATE_WEB_JOB, *flags)
    assert result.code == 1
    assert "read" in assert_one_error_line(result)
    assert ok(cli("jobs", "list", *flags))


def test_a_wrong_api_key_is_refused_with_one_line(cli: Cli, server: Server) -> None:
    wrong = "ck_aaaaaaaa_" + "b" * 32
    result = cli("jobs", "list", "--url", server.url, "--api-key", wrong)
    assert result.code == 1
    assert "key" in assert_one_error_line(result).lower()


def test_a_header_without_a_colon_is_a_usage_error(jobs: Cli) -> None:
    result = jobs(
        "jobs",
        "create",
        "--slug",
        "h",
        "--target-url",
        "https://e.example/",
        "-H",
        "Authorization Bearer x",
    )
    assert result.code == 2
    assert "header" in assert_one_error_line(result)


def test_a_missing_file_is_a_usage_error(jobs: Cli, tmp_path: Path) -> None:
    result = jobs("jobs", "create", "-f", str(tmp_path / "nope.yaml"))
    assert result.code == 2
    assert "nope.yaml" in assert_one_error_line(result)


def test_a_file_that_is_not_one_job_object_is_a_usage_error(jobs: Cli, tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- slug: a\n- slug: b\n")
    result = jobs("jobs", "create", "-f", str(path))
    assert result.code == 2
    assert "one job object" in assert_one_error_line(result)


def test_a_missing_api_key_is_a_usage_error(cli: Cli, server: Server) -> None:
    result = cli("jobs", "list", "--url", server.url)
    assert result.code == 2
    assert "API key" in assert_one_error_line(result)


def test_a_missing_api_key_in_a_real_process_exits_2(server: Server) -> None:
    result = run_process("jobs", "list", env=clean_env(CRONKEEPER_URL=server.url))
    assert result.code == 2
    assert "CRONKEEPER_API_KEY" in assert_one_error_line(result)


def test_an_unreachable_server_is_one_cannot_reach_line(cli: Cli, project: Project) -> None:
    result = cli("jobs", "list", "--url", "http://127.0.0.1:9", "--api-key", project.key)
    assert result.code == 1
    assert "cannot reach" in assert_one_error_line(result)


def test_an_unreachable_server_in_a_real_process_exits_1(project: Project) -> None:
    env = clean_env(CRONKEEPER_URL="http://127.0.0.1:9", CRONKEEPER_API_KEY=project.key)
    result = run_process("jobs", "show", "web", env=env)
    assert result.code == 1
    assert "cannot reach" in assert_one_error_line(result)


def test_an_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("jobs", "frobnicate")
    assert result.code == 2
    assert "frobnicate" in assert_one_error_line(result)


def test_an_unknown_top_level_command_in_a_real_process_exits_2() -> None:
    result = run_process("frobnicate")
    assert result.code == 2
    assert "frobnicate" in assert_one_error_line(result)


def test_an_unknown_option_is_a_usage_error(jobs: Cli) -> None:
    result = jobs("jobs", "list", "--colour")
    assert result.code == 2
    assert "--colour" in assert_one_error_line(result)
