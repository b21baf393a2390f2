%% dist_counter_bench: throughput of a gen_server counter on another BEAM
%% node over Erlang distribution (TCP on 127.0.0.1), the Erlang row of
%% mesh_bench (tools/bench/README.md, section mesh_bench). run_dist.sh
%% starts both nodes and a private epmd.
%%
%% The counter does what mesh_bench's raw CAF counter does: each event's
%% payload is a 16-byte binary holding a decimal integer as text, right-
%% aligned in spaces (any other payload counts as 1); it is added to a
%% running total (a 64-bit overflow is an error that leaves it unchanged).
%%
%% Row:
%%   cast  gen_server:cast({?NAME, Server}, ...) of one event at a time, in
%%         chunks of ?CHUNK casts, each chunk followed by one
%%         gen_server:call that waits until the server has applied the
%%         whole chunk (the timed region includes it): the same shape as
%%         mesh_bench's one-message-per-event CAF row.
%%
%% Output (stdout) of the client node, which mesh_bench parses:
%%   RESULT cast <median events/s> <events, all trials> <seconds, all trials>
%%   INFO otp <release> erts <version> schedulers <n>
%%
%% Usage (see run_dist.sh):
%%   server node: erl -noshell -name S -pa DIR -run dist_counter_bench serve
%%   client node: erl -noshell -name C -pa DIR -run dist_counter_bench main \
%%                    S SECONDS TRIALS MAX_EVENTS
%% SECONDS is the time budget, split evenly over TRIALS timed runs; each run
%% also stops after MAX_EVENTS / TRIALS events unless MAX_EVENTS is 0. The
%% median of the per-trial rates is reported. The client stops the server
%% node when it is done.

-module(dist_counter_bench).
-behaviour(gen_server).

-export([main/1, serve/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(NAME, dist_counter).
-define(CHUNK, 10000).
-define(POOL, 64).
-define(WARMUP, 20000).
-define(INT64_MAX, 9223372036854775807).
-define(INT64_MIN, -9223372036854775808).

%% -- the counter (server node) ----------------------------------------------

serve() ->
    {ok, _} = gen_server:start({local, ?NAME}, ?MODULE, [], []),
    %% The VM stays up (erl -noshell) until the client calls init:stop/0.
    ok.

%% State: {Events, Total}.
init([]) -> {ok, {0, 0}}.

handle_cast({add, Payload}, {Events, Total} = S) ->
    case add(Payload, Total) of
        {ok, Next} -> {noreply, {Events + 1, Next}};
        {error, _} -> {noreply, S}
    end.

handle_call(count, _From, S) ->
    {reply, S, S}.

handle_info(_Msg, S) -> {noreply, S}.

add(Payload, Total) ->
    Delta = parse(Payload),
    Next = Total + Delta,
    if
        Delta > ?INT64_MAX; Delta < ?INT64_MIN -> {error, out_of_range};
        Next > ?INT64_MAX; Next < ?INT64_MIN -> {error, overflow};
        true -> {ok, Next}
    end.

parse(Payload) ->
    try binary_to_integer(Payload)
    catch error:badarg ->
        try binary_to_integer(string:trim(Payload))
        catch error:badarg -> 1
        end
    end.

%% -- the benchmark (client node) --------------------------------------------

main([ServerText, SecondsText, TrialsText, MaxText]) ->
    Server = list_to_atom(ServerText),
    Seconds = to_number(SecondsText),
    Trials = list_to_integer(TrialsText),
    Max = list_to_integer(MaxText),
    Cap = case Max of 0 -> infinity; _ -> max(1, Max div Trials) end,
    connect(Server, 100),
    wait_registered(Server, 100),
    Dest = {?NAME, Server},
    Pool = list_to_tuple([pad(I) || I <- lists:seq(1, ?POOL)]),
    io:format("INFO otp ~s erts ~s schedulers ~p (two nodes, -name over "
              "127.0.0.1)~n",
              [erlang:system_info(otp_release), erlang:system_info(version),
               erlang:system_info(schedulers_online)]),
    put(counter_i, 0),
    Budget = Seconds / Trials,
    Warm = run(Dest, Pool, warmup, infinity),
    Results = [run(Dest, Pool, Budget, Cap) || _ <- lists:seq(1, Trials)],
    Events = lists:sum([N || {N, _} <- Results]),
    Secs = lists:sum([T || {_, T} <- Results]),
    Rates = lists:sort([N / T || {N, T} <- Results, T > 0]),
    Sent = element(1, Warm) + Events,
    {Applied, Total} = gen_server:call(Dest, count, 30000),
    Expected = expected_sum(Sent),
    Status = case {Applied, Total} of
                 {Sent, Expected} -> 0;
                 _ ->
                     io:format(standard_error,
                               "dist_counter_bench: server applied ~p events, "
                               "total ~p; sent ~p, expected total ~p~n",
                               [Applied, Total, Sent, Expected]),
                     1
             end,
    io:format("RESULT cast ~.1f ~p ~.6f~n", [median(Rates), Events, Secs]),
    rpc:cast(Server, init, stop, []),
    halt(Status);
main(_) ->
    io:format(standard_error,
              "usage: dist_counter_bench main SERVER SECONDS TRIALS MAX_EVENTS~n",
              []),
    halt(2).

%% The server node may still be starting: retry for up to N x 100 ms.
connect(Server, 0) ->
    io:format(standard_error, "dist_counter_bench: cannot reach ~p~n", [Server]),
    halt(1);
connect(Server, N) ->
    case net_adm:ping(Server) of
        pong -> ok;
        pang -> timer:sleep(100), connect(Server, N - 1)
    end.

wait_registered(Server, 0) ->
    io:format(standard_error, "dist_counter_bench: no counter on ~p~n",
              [Server]),
    halt(1);
wait_registered(Server, N) ->
    case rpc:call(Server, erlang, whereis, [?NAME]) of
        Pid when is_pid(Pid) -> ok;
        _ -> timer:sleep(100), wait_registered(Server, N - 1)
    end.

pad(I) ->
    list_to_binary(io_lib:format("~16w", [I])).

to_number(Text) ->
    try list_to_float(Text)
    catch error:badarg -> float(list_to_integer(Text))
    end.

%% Events numbered 0..N-1 across the whole run: event i carries
%% (i rem ?POOL) + 1.
expected_sum(N) ->
    Full = N div ?POOL,
    Rest = N rem ?POOL,
    Full * (?POOL * (?POOL + 1) div 2) + Rest * (Rest + 1) div 2.

median(Rates) ->
    Len = length(Rates),
    case Len rem 2 of
        1 -> lists:nth(Len div 2 + 1, Rates);
        0 -> (lists:nth(Len div 2, Rates) + lists:nth(Len div 2 + 1, Rates)) / 2
    end.

%% One trial (or the warm-up): {Events, Seconds}.
run(Dest, Pool, Budget, Cap) ->
    T0 = erlang:monotonic_time(nanosecond),
    Deadline = case Budget of
                   warmup -> undefined;
                   _ -> T0 + round(Budget * 1.0e9)
               end,
    N = loop(Dest, Pool, Deadline, Cap, 0),
    T1 = erlang:monotonic_time(nanosecond),
    {N, (T1 - T0) / 1.0e9}.

loop(_Dest, _Pool, undefined, _Cap, N) when N >= ?WARMUP -> N;
loop(_Dest, _Pool, _Deadline, Cap, N) when Cap =/= infinity, N >= Cap -> N;
loop(Dest, Pool, Deadline, Cap, N) ->
    cast_chunk(Dest, Pool, ?CHUNK),
    _ = gen_server:call(Dest, count, 30000),
    case Deadline =/= undefined
         andalso erlang:monotonic_time(nanosecond) >= Deadline of
        true -> N + ?CHUNK;
        false -> loop(Dest, Pool, Deadline, Cap, N + ?CHUNK)
    end.

cast_chunk(_, _, 0) -> ok;
cast_chunk(Dest, Pool, K) ->
    I = get(counter_i),
    put(counter_i, I + 1),
    gen_server:cast(Dest, {add, element(I rem ?POOL + 1, Pool)}),
    cast_chunk(Dest, Pool, K - 1).
